"""Redis locks between real OS processes: each worker is a separate Python interpreter.

Workers run ``WORKER`` with ``python -c`` and report JSON events on stdout, one a line.
The Redis URL (it holds a password) reaches them through the environment, never argv.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time

import pytest

from conftest import REPO, real_setting, unique
from medflow.cache.redis import RedisCacheBackend

WORKER = r'''
import asyncio, json, os, random, sys, time
from medflow.cache.redis import RedisCacheBackend

def emit(**event):
    print(json.dumps(event), flush=True)

async def count(backend, args):
    """Increment a counter non-atomically under the lock (the test holds it until all are trying)."""
    emit(event="trying")
    spans = []
    for _ in range(args["iterations"]):
        lock = await backend.locks.acquire(args["key"], ttl_s=5, wait_s=20)
        assert lock is not None, "lock not acquired"
        entered = time.time()
        value = int(await backend.cache.get(args["counter"]) or 0)
        await asyncio.sleep(0.005)  # widen the read-modify-write race
        await backend.cache.set(args["counter"], str(value + 1).encode())
        spans.append([entered, time.time()])
        assert await lock.release(), "release refused"
        # let the others in: longer than a waiter's 50 ms poll (shorter, and under load the
        # holder took the lock back 20 times in a row), random so no lock-step with the polls
        await asyncio.sleep(random.uniform(0.06, 0.1))
    emit(event="done", spans=spans)

async def hold(backend, args):
    """Acquire, hold for a while, then report who held the key and whether release worked."""
    emit(event="waiting", t=time.time())
    lock = await backend.locks.acquire(args["key"], ttl_s=args["ttl"], wait_s=args["wait"], watchdog=args["watchdog"])
    if lock is None:
        emit(event="timeout", t=time.time())
        return
    emit(event="acquired", token=lock.token, t=time.time())
    await asyncio.sleep(args["hold"])
    holder = await backend.locks.holder(args["key"])
    released = await lock.release()
    emit(event="released", ok=released, holder=holder, t=time.time())

async def main():
    mode, args = sys.argv[1], json.loads(sys.argv[2])
    backend = RedisCacheBackend(os.environ["MEDFLOW_TEST_REDIS_URL"], namespace=args["namespace"])
    try:
        await {"count": count, "hold": hold}[mode](backend, args)
    finally:
        await backend.close()

asyncio.run(main())
'''


class Worker:
    """One worker process and its event stream."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, redis_url: str, mode: str, **args) -> "Worker":
        env = {**os.environ, "MEDFLOW_TEST_REDIS_URL": redis_url, "PYTHONPATH": str(REPO)}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", WORKER, mode, json.dumps(args),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=env, cwd=REPO,
        )
        return cls(process)

    async def event(self, expected: str, timeout_s: float = 8.0) -> dict:
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout_s)
        if not line:
            await self.process.wait()
            errors = (await self.process.stderr.read()).decode(errors="replace")
            raise AssertionError(f"worker exited ({self.process.returncode}) before {expected!r}:\n{errors[-2000:]}")
        event = json.loads(line)
        assert event["event"] == expected, event
        return event

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()


@pytest.fixture
async def workers():
    """Start workers through ``workers.start(mode, ...)``; all are killed at the end of the test.

    The Redis URL stays inside the fixtures: pytest prints a failing test's arguments, and
    the URL holds the password.
    """
    redis_url = real_setting("MEDFLOW_TEST_REDIS_URL")
    started: list[Worker] = []

    class Starter:
        async def start(self, mode: str, **args) -> Worker:
            worker = await Worker.start(redis_url, mode, **args)
            started.append(worker)
            return worker

    yield Starter()
    for worker in started:
        await worker.stop()


@pytest.fixture
def namespace() -> str:
    return unique("t")


@pytest.fixture
async def backend(namespace):
    """The test's own view of the workers' namespace."""
    backend = RedisCacheBackend(real_setting("MEDFLOW_TEST_REDIS_URL"), namespace=namespace)
    yield backend
    await backend.close()


@pytest.mark.parametrize("count", [2, 4])
async def test_lock_serialises_read_modify_write_across_processes(workers, backend, namespace, count):
    iterations = 20
    args = {"namespace": namespace, "key": "counter-lock", "counter": "counter", "iterations": iterations}
    gate = await backend.locks.acquire("counter-lock", ttl_s=30)  # so that every worker starts contended
    procs = [await workers.start("count", **args) for _ in range(count)]
    for proc in procs:
        await proc.event("trying", timeout_s=15)
    await asyncio.sleep(0.1)
    assert await gate.release()
    results = [await proc.event("done", timeout_s=20) for proc in procs]

    assert int(await backend.cache.get("counter")) == count * iterations  # no lost update
    spans = sorted((enter, leave, n) for n, result in enumerate(results) for enter, leave in result["spans"])
    for (_, left, _), (entered, _, _) in zip(spans, spans[1:]):
        assert entered >= left, "two critical sections overlapped"
    owners = [n for _, _, n in spans]
    switches = sum(a != b for a, b in zip(owners, owners[1:]))
    assert switches >= count, "the processes never really competed for the lock"
    await backend.cache.delete("counter")


async def test_holder_past_its_ttl_cannot_release_the_next_holders_lock(workers, backend, namespace):
    common = {"namespace": namespace, "key": "job", "watchdog": False}
    slow = await workers.start("hold", ttl=0.5, wait=0, hold=1.5, **common)
    await slow.event("waiting", timeout_s=15)
    slow_acquired = await slow.event("acquired")
    fast = await workers.start("hold", ttl=5, wait=5, hold=1.5, **common)
    await fast.event("waiting", timeout_s=15)
    fast_acquired = await fast.event("acquired")
    slow_released = await slow.event("released")
    fast_released = await fast.event("released")

    assert fast_acquired["t"] - slow_acquired["t"] >= 0.4  # only once the slow holder's TTL ran out
    assert fast_acquired["t"] < slow_released["t"]  # ... while the slow one still thought it held it
    assert slow_released["ok"] is False
    assert slow_released["holder"] == fast_acquired["token"]  # the slow release deleted nothing
    assert fast_released["holder"] == fast_acquired["token"]
    assert fast_released["ok"] is True


async def test_lock_of_a_killed_holder_frees_within_its_ttl(workers, backend, namespace):
    ttl = 1.0
    common = {"namespace": namespace, "key": "job", "watchdog": True}
    doomed = await workers.start("hold", ttl=ttl, wait=0, hold=60, **common)
    await doomed.event("waiting", timeout_s=15)
    doomed_acquired = await doomed.event("acquired")
    waiter = await workers.start("hold", ttl=5, wait=10, hold=0, **common)
    await waiter.event("waiting", timeout_s=15)

    await asyncio.sleep(1.5 * ttl)  # the watchdog keeps the lock past its TTL while the holder lives
    assert await backend.locks.holder("job") == doomed_acquired["token"]

    doomed.process.send_signal(signal.SIGKILL)
    killed_at = time.time()
    await doomed.process.wait()
    acquired = await waiter.event("acquired", timeout_s=5)
    assert 0 < acquired["t"] - killed_at <= ttl + 0.4
    assert (await waiter.event("released"))["ok"] is True
