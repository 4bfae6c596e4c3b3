"""Dynamic batching with a bounded wait: concurrent requests share one engine call, a lone
request waits no longer than the bound, batches never exceed the limit, and an engine
failure reaches every caller of that batch (and the next batch still runs)."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from medflow.inference.batching import DynamicBatcher


def doubling(calls):
    def run(inputs):
        calls.append(inputs["x"].shape[0])
        return {"y": inputs["x"] * 2}
    return run


async def test_concurrent_requests_share_one_engine_call_and_get_their_own_rows():
    calls = []
    batcher = DynamicBatcher(doubling(calls), max_batch=16, max_wait_s=0.05)
    results = await asyncio.gather(*[batcher.submit({"x": np.full((1, 3), i, np.float32)}) for i in range(8)])
    assert calls == [8]
    for i, r in enumerate(results):
        assert r.batch_size == 8 and r.outputs["y"].tolist() == [[2 * i] * 3]


async def test_a_lone_request_waits_at_most_the_bound():
    batcher = DynamicBatcher(doubling([]), max_batch=16, max_wait_s=0.02)
    started = time.perf_counter()
    result = await batcher.submit({"x": np.ones((2, 1), np.float32)})
    assert time.perf_counter() - started < 0.5
    assert result.batch_size == 1 and result.outputs["y"].shape == (2, 1)


async def test_batches_never_exceed_the_limit():
    calls = []
    batcher = DynamicBatcher(doubling(calls), max_batch=4, max_wait_s=0.05)
    await asyncio.gather(*[batcher.submit({"x": np.ones((1, 1), np.float32)}) for _ in range(10)])
    assert sum(calls) == 10 and max(calls) <= 4


async def test_a_zero_wait_still_batches_what_queued_while_the_engine_was_busy():
    calls = []
    batcher = DynamicBatcher(doubling(calls), max_batch=16, max_wait_s=0.0)
    await asyncio.gather(*[batcher.submit({"x": np.ones((1, 1), np.float32)}) for _ in range(6)])
    assert calls == [6]


async def test_multi_row_requests_never_overflow_the_batch():
    calls = []
    batcher = DynamicBatcher(doubling(calls), max_batch=4, max_wait_s=0.05)
    results = await asyncio.gather(*[batcher.submit({"x": np.full((3, 1), i, np.float32)}) for i in range(4)])
    assert calls == [3, 3, 3, 3]
    assert [r.outputs["y"][:, 0].tolist() for r in results] == [[2 * i] * 3 for i in range(4)]


async def test_the_engine_runs_off_the_event_loop():
    """While the engine works, the loop keeps serving (preprocessing of the next requests)."""
    seen = []

    def slow(inputs):
        seen.append(threading.current_thread() is threading.main_thread())
        time.sleep(0.2)
        return {"y": inputs["x"]}

    batcher = DynamicBatcher(slow, max_batch=4, max_wait_s=0.001)
    ticks = 0

    async def ticker():
        nonlocal ticks
        for _ in range(10):
            await asyncio.sleep(0.01)
            ticks += 1

    await asyncio.gather(batcher.submit({"x": np.ones((1, 1), np.float32)}), ticker())
    assert seen == [False] and ticks == 10


async def test_an_engine_failure_reaches_every_caller_and_the_next_batch_runs():
    fail = {"on": True}

    def run(inputs):
        if fail["on"]:
            raise RuntimeError("engine broke")
        return {"y": inputs["x"]}

    batcher = DynamicBatcher(run, max_batch=8, max_wait_s=0.02)
    results = await asyncio.gather(*[batcher.submit({"x": np.ones((1, 1), np.float32)}) for _ in range(3)],
                                   return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    fail["on"] = False
    assert (await batcher.submit({"x": np.ones((1, 1), np.float32)})).batch_size == 1


@pytest.mark.parametrize("widths", [(5, 5), (3, 7)])
async def test_token_inputs_of_different_lengths_are_padded(widths):
    calls = []

    def run(inputs):
        calls.append(inputs["tokens"].shape)
        return {"n": (inputs["tokens"] > 0).sum(1)}

    batcher = DynamicBatcher(run, max_batch=8, max_wait_s=0.05, pad_axis1=("tokens",))
    results = await asyncio.gather(*[batcher.submit({"tokens": np.ones((1, w), np.int64)}) for w in widths])
    assert calls == [(2, max(widths))]
    assert [r.outputs["n"].tolist() for r in results] == [[w] for w in widths]
