"""Time-outs, bounded retries with backoff and jitter, and a circuit breaker, for every remote call.

The breaker opens when, over the last ``window`` calls (at least ``min_calls``), the share
of failures or of slow calls passes its threshold; it stays open ``open_s`` seconds, then
lets ``half_open_calls`` trial calls through and closes only if they all succeed fast.
Every breaker registers itself so its state is visible (``/healthz``, ``/metrics``).
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import deque
from dataclasses import dataclass
from typing import Awaitable, Callable, TypeVar

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from medflow.errors import PermanentError, TransientError

T = TypeVar("T")


class CircuitOpen(TransientError):
    """The breaker refused the call without trying it."""


class State(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerConfig:
    window: int = 20
    min_calls: int = 10
    failure_ratio: float = 0.5
    slow_call_s: float = 2.0
    slow_ratio: float = 0.8
    open_s: float = 30.0
    half_open_calls: int = 3


class CircuitBreaker:
    def __init__(self, name: str, config: BreakerConfig | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.config = config or BreakerConfig()
        self._clock = clock
        self._calls: deque[tuple[bool, bool]] = deque(maxlen=self.config.window)  # (failed, slow)
        self._state = State.CLOSED
        self._opened_at = 0.0
        self._trials = 0
        self._trial_results: list[bool] = []
        self.rejected = 0
        REGISTRY[name] = self

    @property
    def state(self) -> State:
        if self._state is State.OPEN and self._clock() - self._opened_at >= self.config.open_s:
            self._state, self._trials, self._trial_results = State.HALF_OPEN, 0, []
        return self._state

    def snapshot(self) -> dict[str, object]:
        failed = sum(1 for f, _ in self._calls if f)
        slow = sum(1 for _, s in self._calls if s)
        n = len(self._calls) or 1
        return {"name": self.name, "state": self.state.value, "calls": len(self._calls),
                "failure_ratio": round(failed / n, 3), "slow_ratio": round(slow / n, 3), "rejected": self.rejected}

    def _before(self) -> None:
        state = self.state
        if state is State.OPEN or (state is State.HALF_OPEN and self._trials >= self.config.half_open_calls):
            self.rejected += 1
            raise CircuitOpen(f"circuit {self.name} is open")
        if state is State.HALF_OPEN:
            self._trials += 1

    def _after(self, failed: bool, elapsed: float) -> None:
        slow = elapsed >= self.config.slow_call_s
        if self._state is State.HALF_OPEN:
            self._trial_results.append(not failed and not slow)
            if not self._trial_results[-1]:
                self._open()
            elif len(self._trial_results) >= self.config.half_open_calls:
                self._state, self._calls = State.CLOSED, deque(maxlen=self.config.window)
            return
        self._calls.append((failed, slow))
        if len(self._calls) < self.config.min_calls:
            return
        n = len(self._calls)
        if sum(f for f, _ in self._calls) / n >= self.config.failure_ratio or sum(s for _, s in self._calls) / n >= self.config.slow_ratio:
            self._open()

    def _open(self) -> None:
        self._state, self._opened_at = State.OPEN, self._clock()

    def reset(self) -> None:
        """Closed again with an empty window (a test that opened a process-wide breaker)."""
        self._state, self._calls, self._trials, self._trial_results = State.CLOSED, deque(maxlen=self.config.window), 0, []

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        self._before()
        started = self._clock()
        try:
            result = await fn()
        except PermanentError:
            self._after(False, self._clock() - started)  # the callee answered: not its health's fault
            raise
        except BaseException:
            self._after(True, self._clock() - started)
            raise
        self._after(False, self._clock() - started)
        return result


REGISTRY: dict[str, CircuitBreaker] = {}


def breaker_states() -> list[dict[str, object]]:
    return [b.snapshot() for b in REGISTRY.values()]


async def with_timeout(fn: Callable[[], Awaitable[T]], timeout_s: float) -> T:
    """Await ``fn()`` for at most ``timeout_s``; a time-out is a TransientError."""
    try:
        async with asyncio.timeout(timeout_s):   # not wait_for: on 3.11 it can swallow a cancellation
            return await fn()
    except TimeoutError:
        raise TransientError(f"timed out after {timeout_s}s") from None


async def call_remote(fn: Callable[[], Awaitable[T]], *, timeout_s: float, attempts: int = 3,
                      backoff_initial_s: float = 0.1, backoff_max_s: float = 5.0,
                      breaker: CircuitBreaker | None = None) -> T:
    """The one way to call a remote dependency: time-out each try, retry transient failures
    with exponential backoff and jitter, and go through the breaker when one is given.
    PermanentError and CircuitOpen are not retried."""

    async def one_try() -> T:
        if breaker is None:
            return await with_timeout(fn, timeout_s)
        return await breaker.call(lambda: with_timeout(fn, timeout_s))

    retrying = AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential_jitter(multiplier=backoff_initial_s, max=backoff_max_s, jitter=backoff_initial_s),
        retry=retry_if_exception(lambda e: not isinstance(e, (PermanentError, CircuitOpen))),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await one_try()
    raise AssertionError("unreachable")  # pragma: no cover
