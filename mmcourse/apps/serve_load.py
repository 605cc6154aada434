"""Start ``python -m mmcourse serve`` from Python and measure it under load (notebook 10).

- ``ServerProcess(model, *options)``: the server in a subprocess on a free port of
  127.0.0.1, ready when ``/health`` answers; ``stop()`` sends SIGTERM and returns the exit
  status (``terminate()`` only sends it, to stop several side by side). A context manager.
- ``load_test(url, path, bodies, clients, requests)``: ``clients`` concurrent clients
  (``httpx``, asyncio) send ``requests`` POSTs in all, each client its next request as soon
  as its last is answered; latency percentiles, requests per second and errors. Only
  loopback addresses are accepted: this is a load generator.
- ``benchmark()``: ``python -m mmcourse bench serve-load``: notebook 08's captioner served
  with ``--max-batch 32`` and with ``--max-batch 1``, at 1, 8 and 32 clients.
"""

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from mmcourse.paths import REPO_ROOT

START_TIMEOUT_S = 180
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``python -m mmcourse serve --model MODEL *options`` on a free loopback port; ``url``,
    ``log()`` (its output so far) and ``stop()``. Introduced in notebook 10."""

    def __init__(self, model, *options, log_path=None, wait: bool = True):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._terminated = False
        self.log_path = Path(log_path) if log_path else Path(os.devnull)
        self._log = open(self.log_path, "w")  # noqa: SIM115  (closed in stop)
        environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
                       "PYTHONPATH": os.pathsep.join(filter(None, [
                           str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mmcourse", "serve", "--model", str(model),
             *map(str, options), "--port", str(self.port)], cwd=REPO_ROOT, env=environment,
            stdout=self._log, stderr=subprocess.STDOUT)
        if wait:
            self.wait_ready()

    def wait_ready(self) -> "ServerProcess":
        """Return once ``/health`` answers (start several servers with ``wait=False``, then
        wait for each: they load side by side)."""
        import requests

        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                self._log.close()
                raise RuntimeError(f"the server exited with status {self.process.returncode}"
                                   f": {self.log()}")
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"{self.url}/health", timeout=5).ok:
                    return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not answer within {START_TIMEOUT_S} s")
            time.sleep(0.3)

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return "" if self.log_path == Path(os.devnull) else self.log_path.read_text()[-3000:]

    def terminate(self) -> "ServerProcess":
        """Send SIGTERM and return at once (``stop()`` then waits): several servers told
        first shut down side by side."""
        if self.process.poll() is None and not self._terminated:
            self.process.send_signal(signal.SIGTERM)
            self._terminated = True
        return self

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM (requests in flight are finished; not sent twice after ``terminate()``),
        then the exit status."""
        if self.process.poll() is None:
            self.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not self._log.closed:
            self._log.close()
        return self.process.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def load_test(url: str, path: str, bodies: list, clients: int, requests: int) -> dict:
    """``clients`` concurrent clients send ``requests`` POSTs to ``url + path`` in all (body
    ``bodies[i % len(bodies)]``). Returns ``p50_ms``, ``p95_ms``, ``p99_ms``, ``mean_ms``,
    ``rps``, ``errors`` (non-200 answers and failed connections), ``answered`` and
    ``latencies_ms``. Introduced in notebook 10."""
    host = urlparse(url).hostname
    if host not in LOOPBACK:
        raise ValueError(f"url must point at this machine ({', '.join(LOOPBACK)}), got {host}: "
                         f"a load test is never sent elsewhere")
    if not 1 <= clients <= requests:
        raise ValueError(f"need 1 <= clients <= requests, got {clients} and {requests}")
    coroutine = _load(url + path, bodies, clients, requests)
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # the usual case: no event loop in this thread
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(1) as pool:  # Jupyter runs one: use a thread of our own
        return pool.submit(asyncio.run, coroutine).result()


async def _load(target, bodies, clients, requests):
    import httpx

    latencies, errors, next_index = [], [], {"i": 0}

    async def client(session):
        while next_index["i"] < requests:
            index = next_index["i"]
            next_index["i"] += 1
            start = time.perf_counter()
            try:
                response = await session.post(target, json=bodies[index % len(bodies)])
                if response.status_code != 200:
                    errors.append(f"{response.status_code}: {response.text[:200]}")
            except httpx.HTTPError as error:
                errors.append(f"{type(error).__name__}: {error}")
            latencies.append((time.perf_counter() - start) * 1000)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=300, limits=limits) as session:
        start = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        seconds = time.perf_counter() - start
    milliseconds = np.array(latencies)
    return {"clients": clients, "answered": len(latencies), "errors": len(errors),
            "error_examples": errors[:3], "rps": len(latencies) / seconds,
            "mean_ms": float(milliseconds.mean()),
            **{f"p{q}_ms": float(np.percentile(milliseconds, q)) for q in (50, 95, 99)},
            "latencies_ms": milliseconds.tolist()}


def data_url(image) -> str:
    """An RGB uint8 image (H, W, 3) as a ``data:image/png;base64,...`` URL, the way chat
    clients send images. Introduced in notebook 10."""
    import base64

    import cv2

    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be RGB uint8 (H, W, 3), got {image.dtype} {image.shape}")
    png = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))[1].tobytes()
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def chat_body(image, prompt: str | None = None, **settings) -> dict:
    """A chat completions request for an image (RGB uint8) and an optional text part, with
    ``settings`` (``max_tokens``, ``temperature``, ``stream``, ...). Introduced in notebook
    10."""
    content = [{"type": "image_url", "image_url": {"url": data_url(image)}}]
    if prompt is not None:
        content.insert(0, {"type": "text", "text": prompt})
    return {"messages": [{"role": "user", "content": content}], **settings}


def caption_bodies(count: int = 16, max_tokens: int = 8) -> list[dict]:
    """Chat requests for the captioner: ``count`` test images of the attributes level,
    greedy, ``max_tokens`` each. Introduced in notebook 10."""
    from mmcourse.data import scenes as data

    images = data.load_arrays("match", "attributes", "test")[0][:count]
    return [chat_body(image, temperature=0, max_tokens=max_tokens) for image in images]


def measure(model, options, path, bodies, levels=(1, 8, 32), per_client: int = 4,
            minimum: int = 32) -> list[dict]:
    """Start a server with ``options``, warm it, and ``load_test`` it at each number of
    clients (``max(minimum, per_client * clients)`` requests); the server's batch counts
    are added to each row. Introduced in notebook 10."""
    import requests

    rows = []
    with ServerProcess(model, *options) as server:
        for clients in (1, max(levels)):  # warm-up: batch shapes traced, caches filled
            load_test(server.url, path, bodies, clients, 2 * clients)
        for clients in levels:
            before = requests.get(f"{server.url}/health", timeout=10).json()
            row = load_test(server.url, path, bodies, clients,
                            max(minimum, per_client * clients))
            after = requests.get(f"{server.url}/health", timeout=10).json()
            batches = after["batches"] - before["batches"]
            row["mean_batch"] = (after["batched_items"] - before["batched_items"]) / \
                max(batches, 1)
            rows.append(row)
    return rows


def load_figures(levels=(1, 8, 32)) -> dict:
    """``measure`` of notebook 08's captioner (greedy, 8 tokens) with ``--max-batch 32`` and
    ``--max-batch 1``: ``{"32": rows, "1": rows}``, latencies dropped. Introduced in
    notebook 10."""
    model = REPO_ROOT / "docs" / "results" / "vlm_llava.keras"
    bodies = caption_bodies()
    return {str(batch): [{k: v for k, v in row.items() if k != "latencies_ms"}
                         for row in measure(model, ["--max-batch", batch,
                                                    "--batch-timeout-ms", 5],
                                            "/v1/chat/completions", bodies, levels)]
            for batch in (32, 1)}


def benchmark():
    """The ``serve-load`` benchmark: notebook 08's captioner (greedy, 8 tokens) served with
    dynamic batching (``--max-batch 32 --batch-timeout-ms 5``) and without (``--max-batch
    1``), at 1, 8 and 32 concurrent clients; p50/p95/p99 latency, requests per second,
    errors, the mean batch; the batching speed-up in requests per second at each level.
    Introduced in notebook 10."""
    from mmcourse.bench import BenchResult, Ratio

    result = BenchResult("serve-load", "captioner over HTTP on 127.0.0.1: dynamic batching "
                                       "(--max-batch 32) vs none (--max-batch 1)")
    measured = {int(batch): rows for batch, rows in load_figures().items()}
    for batch, rows in measured.items():
        for row in rows:
            result.facts[f"max-batch {batch:>2}, {row['clients']:>2} clients"] = (
                f"p50 {row['p50_ms']:7.1f} ms  p95 {row['p95_ms']:7.1f}  p99 "
                f"{row['p99_ms']:7.1f}  {row['rps']:6.1f} req/s  errors {row['errors']}/"
                f"{row['answered']}  mean batch {row['mean_batch']:.1f}")
    for batched, single in zip(measured[32], measured[1], strict=True):
        result.ratios.append(Ratio(f"batching speed-up, {batched['clients']} clients",
                                   batched["rps"] / single["rps"]))
    result.facts["errors in all"] = sum(r["errors"] for rows in measured.values()
                                        for r in rows)
    return result
