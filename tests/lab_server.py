"""Start JupyterLab as `make lab` does, for the tests that talk to it (test_lab, test_lab_browser).

The command is the Makefile's `lab` target (`python -m jupyter lab`, `--allow-root` as root),
served on a free loopback port with a random token, with its own runtime and config folders,
so that neither a learner's ~/.jupyter nor another test's server gets in the way.
"""

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from mmcourse.paths import REPO_ROOT

START_TIMEOUT_S = 90


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request(url: str, token: str, method: str = "GET") -> tuple[int, bytes]:
    """One HTTP request to the server, authenticated with its token."""
    headers = {"Authorization": f"token {token}"}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers, method=method),
                                timeout=10) as response:  # loopback only
        return response.status, response.read()


@contextlib.contextmanager
def running_lab(root_dir: Path, workdir: Path, extra_args=()):
    """Serve `root_dir`; yields (base URL, token). The server stops even when the test fails."""
    port, token = free_port(), secrets.token_hex(16)
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}",
        "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root_dir}", "--ServerApp.port_retries=0",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",  # no network
        *extra_args,
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # containers and CI often run as root
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(workdir / "runtime"),
               JUPYTER_CONFIG_DIR=str(workdir / "config"))
    log = open(workdir / "lab.log", "w+")  # closed in the finally
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
                request(f"{base}/api/status", token)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"jupyter lab did not answer within {START_TIMEOUT_S} s:\n"
                                f"{log.read()[-3000:]}")
                time.sleep(0.5)
        yield base, token
    finally:
        server.terminate()  # the server shuts its kernels down on SIGTERM
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
