"""``mmcourse.apps.batching.DynamicBatcher``: concurrent submissions share a batch up to
``max_batch`` units, only with their own key, each caller gets its own result, an error
reaches every caller of its batch; ``serve_load.load_test`` stays on this machine; and
``serve_load.ServerProcess`` sends one SIGTERM however often it is told to stop."""

import asyncio
import subprocess
import sys
import time

import pytest

from mmcourse.apps import batching, serve_load


def _run(max_batch, timeout_ms, submissions):
    """Submit (item, key, size) all at once; return (results, batches as lists of items)."""
    batches = []

    def run(items):
        batches.append(list(items))
        return [item * 10 for item in items]

    async def main():
        batcher = batching.DynamicBatcher(run, max_batch, timeout_ms)
        results = await asyncio.gather(*(batcher.submit(item, key, size)
                                         for item, key, size in submissions))
        return results, batcher.stats

    results, stats = asyncio.run(main())
    return results, batches, stats


def test_each_caller_gets_its_own_result_and_batches_respect_max_batch():
    results, batches, stats = _run(4, 50, [(i, None, 1) for i in range(10)])
    assert results == [i * 10 for i in range(10)]
    assert [len(b) for b in batches] == [4, 4, 2]  # all arrived together: full batches
    assert stats.batches == 3 and stats.items == 10 and stats.largest == 4


def test_sizes_count_toward_max_batch_and_a_large_item_runs_alone():
    _, batches, stats = _run(4, 50, [(1, None, 3), (2, None, 1), (3, None, 2), (4, None, 6),
                                     (5, None, 1)])
    # in arrival order (no item overtakes one that does not fit): 3 + 1, then 2 (2 + 6 > 4),
    # the 6-unit item alone, then the last
    assert batches == [[1, 2], [3], [4], [5]]
    assert stats.largest == 6


def test_only_items_with_the_same_key_share_a_batch():
    _, batches, _ = _run(8, 50, [(1, "a", 1), (2, "b", 1), (3, "a", 1), (4, "b", 1)])
    assert sorted(map(sorted, batches)) == [[1, 3], [2, 4]]


def test_items_that_are_arrays_interleaved_with_other_keys_are_batched():
    """Taking the later items of a key out of the queue compares nothing but identity: items
    that are NumPy arrays (an image, a Generation holding one) once stopped the worker with
    "truth value of an array is ambiguous", and every later caller waited for ever."""
    import numpy as np

    async def main():
        batcher = batching.DynamicBatcher(lambda items: [int(i.sum()) for i in items], 8, 50)
        submissions = [batcher.submit(np.full(3, i), key=i % 2) for i in range(6)]
        return await asyncio.wait_for(asyncio.gather(*submissions), 10), batcher.stats

    results, stats = asyncio.run(main())
    assert results == [3 * i for i in range(6)]
    assert stats.batches == 2


def test_max_batch_1_runs_every_item_alone():
    _, batches, _ = _run(1, 50, [(i, None, 1) for i in range(5)])
    assert batches == [[0], [1], [2], [3], [4]]


def test_an_error_reaches_every_caller_of_its_batch_and_the_batcher_goes_on():
    def run(items):
        if 0 in items:
            raise ValueError("bad batch")
        return items

    async def main():
        batcher = batching.DynamicBatcher(run, 2, 20)
        first = await asyncio.gather(batcher.submit(0), batcher.submit(1),
                                     return_exceptions=True)
        return first, await batcher.submit(5)

    first, later = asyncio.run(main())
    assert all(isinstance(e, ValueError) for e in first)
    assert later == 5


@pytest.mark.parametrize(("max_batch", "timeout_ms", "needle"), [
    (0, 5, "max_batch must be an int >= 1"), (2.0, 5, "max_batch"), (True, 5, "max_batch"),
    (4, -1, "timeout_ms must be a number >= 0"), (4, float("inf"), "timeout_ms")])
def test_bad_settings_name_the_argument(max_batch, timeout_ms, needle):
    with pytest.raises(ValueError, match=needle):
        batching.DynamicBatcher(lambda items: items, max_batch, timeout_ms)


def test_load_test_refuses_other_machines_and_bad_counts():
    with pytest.raises(ValueError, match="url must point at this machine"):
        serve_load.load_test("http://example.com:80", "/health", [{}], 1, 1)
    with pytest.raises(ValueError, match="1 <= clients <= requests"):
        serve_load.load_test("http://127.0.0.1:9", "/health", [{}], 8, 4)


def test_a_zero_timeout_runs_at_once_and_stats_start_empty():
    batcher = batching.DynamicBatcher(lambda items: items, 4, 0)
    assert (batcher.stats.batches, batcher.stats.items, batcher.stats.largest) == (0, 0, 0)
    _, batches, stats = _run(4, 0, [(1, None, 1)])
    assert batches == [[1]] and stats.largest == 1


# A stand-in for the server: counts the SIGTERMs it gets for half a second after the first,
# and exits 0 only if there was exactly one.
COUNTS_SIGTERMS = """
import signal, sys, time
got = []
signal.signal(signal.SIGTERM, lambda *_: got.append(print("got SIGTERM", flush=True)))
print("ready", flush=True)
while not got:
    time.sleep(0.01)
time.sleep(0.5)
sys.exit(len(got) - 1)
"""


def test_server_processes_told_to_terminate_get_one_sigterm_each(tmp_path, monkeypatch):
    popen = subprocess.Popen
    monkeypatch.setattr(serve_load.subprocess, "Popen", lambda command, **options: popen(
        [sys.executable, "-c", COUNTS_SIGTERMS], **options))
    servers = [serve_load.ServerProcess("model.keras", log_path=tmp_path / f"{i}.log",
                                        wait=False) for i in range(2)]
    _wait_for_logs(servers, "ready")
    for server in servers:  # notebook 10: tell every server first, then wait for each
        assert server.terminate() is server
    _wait_for_logs(servers, "got SIGTERM")  # so that a second one would not merge with it
    for server in servers:
        server.terminate()
    assert [server.stop() for server in servers] == [0, 0]


def _wait_for_logs(servers, text):
    deadline = time.monotonic() + 60
    while not all(text in server.log() for server in servers):
        assert time.monotonic() < deadline, f"the stand-ins never printed {text!r}"
        time.sleep(0.02)
