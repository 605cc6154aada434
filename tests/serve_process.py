"""Start ``python -m mmcourse serve`` as a user would, on a free loopback port, for the tests
that talk to it over HTTP (test_serve, test_serve_chat, test_serve_clip)."""

import contextlib
import os
import signal
import subprocess
import sys
import time

import requests

from mmcourse.paths import REPO_ROOT
from tests.lab_server import free_port

START_TIMEOUT_S = 180
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


class Server:
    """A running server: ``url``, ``process`` and its stderr log file."""

    def __init__(self, arguments, log_path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115  (closed in stop)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mmcourse", "serve", *map(str, arguments),
             "--port", str(self.port)], cwd=REPO_ROOT, env=ENV, stdout=self._log,
            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited {self.process.returncode}: {self.log()}")
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"{self.url}/health", timeout=5).ok:
                    return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server not up after {START_TIMEOUT_S} s: {self.log()}")
            time.sleep(0.5)

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()[-3000:]

    def get(self, path, **options):
        return requests.get(self.url + path, timeout=120, **options)

    def post(self, path, **options):
        return requests.post(self.url + path, timeout=120, **options)

    def terminate(self, timeout=60) -> int:
        """SIGTERM, then the exit status."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@contextlib.contextmanager
def running(arguments, log_path):
    server = Server(arguments, log_path)
    try:
        yield server
    finally:
        server.stop()


def assert_error(response, status, param, *needles, openai=True):
    """A 4xx JSON error that names ``param`` (OpenAI's shape, or TensorFlow Serving's)."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    if openai:
        error = body["error"]
        assert error["param"] == param, body
        message = error["message"]
    else:
        assert body["field"] == param, body
        message = body["error"]
    assert param in message or param in ("body", "model", "url"), message
    for needle in needles:
        assert needle in message, (needle, message)


def chat_content(response) -> str:
    """The generated text of a chat completions answer, which must be a 200."""
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["message"]["content"]


def sse_events(response) -> list[str]:
    """The ``data:`` payloads of a server-sent-events stream, in order."""
    events = []
    for line in response.iter_lines(decode_unicode=True):
        if line:
            assert line.startswith("data: "), line
            events.append(line.removeprefix("data: "))
    return events
