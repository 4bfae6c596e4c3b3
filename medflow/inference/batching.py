"""Dynamic batching with a bounded wait.

Concurrent requests are queued; one worker takes the first and every request already
queued, waits at most ``max_wait_s`` for more (up to ``max_batch`` items; a zero wait still
batches what queued while the engine was busy), concatenates them on axis 0, runs the engine once
in a worker thread (so the event loop keeps decoding and preprocessing the next requests
while the engine runs) and hands each caller its own slice of the outputs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

Arrays = dict[str, np.ndarray]


@dataclass
class BatchResult:
    outputs: Arrays
    batch_size: int  # how many requests ran together in this engine call
    queue_ms: float
    infer_ms: float


@dataclass
class _Item:
    inputs: Arrays
    rows: int
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


class DynamicBatcher:
    def __init__(self, run: Callable[[Arrays], Arrays], *, max_batch: int = 16, max_wait_s: float = 0.005,
                 pad_axis1: tuple[str, ...] = ()):
        self._run = run
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._pad_axis1 = pad_axis1  # inputs whose axis 1 varies per request (token sequences): right-padded with 0
        self._queue: asyncio.Queue[_Item] | None = None
        self._worker: asyncio.Task | None = None
        self._lock = asyncio.Lock()  # one engine call at a time: the engine has its own threads

    async def submit(self, inputs: Arrays) -> BatchResult:
        """Queue one request's inputs (each with its own batch axis 0) and await its outputs."""
        if self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._work())
        rows = next(iter(inputs.values())).shape[0]
        item = _Item(inputs, rows, asyncio.get_running_loop().create_future())
        await self._queue.put(item)
        return await item.future

    async def _work(self) -> None:
        assert self._queue is not None
        carried: _Item | None = None  # taken from the queue but did not fit the last batch
        while True:
            first = carried or await self._queue.get()
            carried = None
            items, rows = [first], first.rows
            deadline = time.perf_counter() + self.max_wait_s
            while rows < self.max_batch:
                if not self._queue.empty():  # queued meanwhile (e.g. while the engine ran): joins at once
                    nxt = self._queue.get_nowait()
                else:
                    timeout = deadline - time.perf_counter()
                    if timeout <= 0:
                        break
                    try:
                        async with asyncio.timeout(timeout):
                            nxt = await self._queue.get()
                    except TimeoutError:
                        break
                if rows + nxt.rows > self.max_batch:  # never more rows than the engine's profile allows
                    carried = nxt
                    break
                items.append(nxt)
                rows += nxt.rows
            # run without blocking the loop; the next batch forms meanwhile
            await self._run_batch(items)

    async def _run_batch(self, items: list[_Item]) -> None:
        started = time.perf_counter()
        try:
            batch = self._concat([i.inputs for i in items])
            outputs = await asyncio.to_thread(self._run, batch)
        except Exception as exc:  # the engine failed: every caller in this batch gets the error
            for item in items:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        infer_ms = (time.perf_counter() - started) * 1000
        offset = 0
        for item in items:
            part = {k: v[offset:offset + item.rows] for k, v in outputs.items()}
            offset += item.rows
            if not item.future.done():
                item.future.set_result(BatchResult(part, len(items), (started - item.enqueued) * 1000, infer_ms))

    def _concat(self, parts: list[Arrays]) -> Arrays:
        out = {}
        for name in parts[0]:
            arrays = [p[name] for p in parts]
            if name in self._pad_axis1 and len({a.shape[1] for a in arrays}) > 1:
                width = max(a.shape[1] for a in arrays)
                arrays = [np.pad(a, [(0, 0), (0, width - a.shape[1])] + [(0, 0)] * (a.ndim - 2)) for a in arrays]
            out[name] = arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=0)
        return out
