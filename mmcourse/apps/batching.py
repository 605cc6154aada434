"""Dynamic batching for a server: requests that arrive together are run as one batch
(introduced in notebook 10).

``DynamicBatcher(run, max_batch, timeout_ms)``: ``await batcher.submit(item, key, size)``
queues an item; one worker collects items with the same ``key`` (e.g. the prompt length of a
generation request, which must match within a batch) until ``max_batch`` units (``size``
each, e.g. the instances of a request) are collected or ``timeout_ms`` has passed since the
first, then calls ``run(items)`` in a worker thread and hands each caller its own result.
Batches run one at a time, in arrival order of their first item, so the model is never
called from two threads at once. An exception of ``run`` reaches every caller of that batch.
This is what TensorFlow Serving's ``--enable_batching`` (``max_batch_size``,
``batch_timeout_micros``) and the batchers of vLLM and TGI do, at course size.
No TensorFlow here: the module is plain ``asyncio``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(eq=False)  # compared by identity: items may be arrays, which == cannot order
class _Pending:
    item: object
    key: object
    size: int
    future: asyncio.Future


@dataclass
class BatchStats:
    """What the batcher did: batches run, items in them, and the largest batch."""

    batches: int = 0
    items: int = 0
    largest: int = 0
    sizes: list = field(default_factory=list)

    @property
    def mean_size(self) -> float:
        return self.items / self.batches if self.batches else 0.0


class DynamicBatcher:
    """Group concurrent ``submit`` calls into batches for ``run(items) -> results`` (one
    result per item, in order). See the module docstring. Introduced in notebook 10."""

    def __init__(self, run: Callable[[list], list], max_batch: int = 32,
                 timeout_ms: float = 5.0):
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ValueError(f"max_batch must be an int >= 1, got {max_batch!r}")
        if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, (int, float)) \
                or not 0 <= timeout_ms < float("inf"):
            raise ValueError(f"timeout_ms must be a number >= 0, got {timeout_ms!r}")
        self.run, self.max_batch, self.timeout_s = run, max_batch, timeout_ms / 1000.0
        self.stats = BatchStats()
        self._queue: list[_Pending] = []
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._lock = threading.Lock()  # run() is never entered twice at once

    async def submit(self, item, key=None, size: int = 1):
        """``run``'s result for ``item``, once its batch has run."""
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done():
            self._wake = asyncio.Event()
            self._worker = loop.create_task(self._work())
        pending = _Pending(item, key, max(1, int(size)), loop.create_future())
        self._queue.append(pending)
        self._wake.set()
        return await pending.future

    def _take(self) -> list[_Pending] | None:
        """The next batch: the oldest item and the later items with its key, up to
        ``max_batch`` units (the oldest item alone may exceed it)."""
        if not self._queue:
            return None
        first = self._queue[0]
        batch, units = [], 0
        for pending in list(self._queue):
            if pending.key != first.key or pending.future.cancelled():
                continue
            if batch and units + pending.size > self.max_batch:
                break
            batch.append(pending)
            units += pending.size
        for pending in batch:
            self._queue.remove(pending)
        self._queue = [p for p in self._queue if not p.future.cancelled()]
        return batch

    def _units(self, key) -> int:
        return sum(p.size for p in self._queue if p.key == key)

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                deadline = loop.time() + self.timeout_s
                key = self._queue[0].key
                while self._units(key) < self.max_batch and loop.time() < deadline:
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), deadline - loop.time())
                    except TimeoutError:
                        break
                batch = self._take()
                if not batch:
                    continue
                await self._run(batch)

    async def _run(self, batch: list[_Pending]) -> None:
        def call():
            with self._lock:
                return self.run([p.item for p in batch])

        try:
            results = await asyncio.to_thread(call)
            if len(results) != len(batch):
                raise RuntimeError(f"run returned {len(results)} results for {len(batch)} "
                                   f"items")
        except Exception as error:  # noqa: BLE001  (each caller gets it)
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(error)
            return
        units = sum(p.size for p in batch)
        self.stats.batches += 1
        self.stats.items += units
        self.stats.largest = max(self.stats.largest, units)
        self.stats.sizes.append(units)
        del self.stats.sizes[:-1000]
        for pending, result in zip(batch, results, strict=True):
            if not pending.future.done():
                pending.future.set_result(result)
