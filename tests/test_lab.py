"""`make lab` serves JupyterLab on notebooks/: the server starts and lists every notebook.

Runs the same command as the Makefile's `lab` target (`python -m jupyter lab`, rooted at
notebooks/), on a free loopback port with a random token, and talks to it over HTTP.
"""

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from mmcourse.paths import NOTEBOOKS_DIR, REPO_ROOT

START_TIMEOUT_S = 90


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:  # loopback only
        return response.status, response.read()


@pytest.fixture
def lab_server(tmp_path):
    port, token = free_port(), secrets.token_hex(16)
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}",
        "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={NOTEBOOKS_DIR}", "--ServerApp.port_retries=0",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",  # no network
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # containers and CI often run as root
    log = open(tmp_path / "lab.log", "w+")  # closed in the finally
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                              env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if server.poll() is not None:
                log.seek(0)
                pytest.fail(f"jupyter lab exited with {server.returncode}:\n{log.read()[-3000:]}")
            try:
                get(f"{base}/api/status?token={token}")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"jupyter lab did not answer within {START_TIMEOUT_S} s:\n"
                                f"{log.read()[-3000:]}")
                time.sleep(0.5)
        yield base, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def test_lab_serves_and_lists_every_notebook(lab_server):
    base, token = lab_server
    status, body = get(f"{base}/api/contents?token={token}")
    assert status == 200
    listed = {item["name"] for item in json.loads(body)["content"] if item["type"] == "notebook"}
    expected = {path.name for path in NOTEBOOKS_DIR.glob("*.ipynb")}
    assert expected, "no notebooks in notebooks/"
    assert expected <= listed

    status, page = get(f"{base}/lab?token={token}")
    assert status == 200 and b"JupyterLab" in page
