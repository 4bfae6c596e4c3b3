"""Retries, time-outs and the circuit breaker protect every remote call."""

from __future__ import annotations

import asyncio

import pytest

from medflow.errors import PermanentError, TransientError
from medflow.resilience import BreakerConfig, CircuitBreaker, CircuitOpen, breaker_states, call_remote, with_timeout


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _breaker(name: str, clock: Clock, **kw) -> CircuitBreaker:
    config = BreakerConfig(window=10, min_calls=4, failure_ratio=0.5, slow_call_s=1.0, slow_ratio=0.5,
                           open_s=30, half_open_calls=2, **kw)
    return CircuitBreaker(name, config, clock)


async def _fail() -> None:
    raise TransientError("down")


async def _ok() -> str:
    return "ok"


async def test_transient_failures_are_retried_until_success():
    calls = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise TransientError("blip")
        return "done"

    assert await call_remote(flaky, timeout_s=1, attempts=5, backoff_initial_s=0.001, backoff_max_s=0.002) == "done"
    assert len(calls) == 3


async def test_retries_are_bounded():
    calls = []

    async def down() -> None:
        calls.append(1)
        raise TransientError("down")

    with pytest.raises(TransientError):
        await call_remote(down, timeout_s=1, attempts=3, backoff_initial_s=0.001, backoff_max_s=0.002)
    assert len(calls) == 3


async def test_permanent_errors_are_not_retried():
    calls = []

    async def invalid() -> None:
        calls.append(1)
        raise PermanentError("bad input")

    with pytest.raises(PermanentError):
        await call_remote(invalid, timeout_s=1, attempts=5, backoff_initial_s=0.001)
    assert len(calls) == 1


async def test_a_slow_call_times_out_as_a_transient_error():
    with pytest.raises(TransientError, match="timed out"):
        await with_timeout(lambda: asyncio.sleep(1), 0.05)


async def test_breaker_opens_on_error_ratio_and_refuses_without_calling():
    clock = Clock()
    breaker = _breaker("t-errors", clock)
    for _ in range(4):
        with pytest.raises(TransientError):
            await breaker.call(_fail)
    assert breaker.state.value == "open"
    called = []

    async def spy() -> None:
        called.append(1)

    with pytest.raises(CircuitOpen):
        await breaker.call(spy)
    assert called == [] and breaker.snapshot()["rejected"] == 1


async def test_breaker_opens_on_slow_call_ratio():
    clock = Clock()
    breaker = _breaker("t-slow", clock)

    async def slow() -> str:
        clock.now += 2.0  # each call takes 2 s on the breaker's clock
        return "late"

    for _ in range(4):
        assert await breaker.call(slow) == "late"
    assert breaker.state.value == "open"


async def test_breaker_half_opens_after_the_wait_and_closes_on_good_trials():
    clock = Clock()
    breaker = _breaker("t-recover", clock)
    for _ in range(4):
        with pytest.raises(TransientError):
            await breaker.call(_fail)
    clock.now += 31
    assert breaker.state.value == "half_open"
    assert await breaker.call(_ok) == "ok"
    assert await breaker.call(_ok) == "ok"
    assert breaker.state.value == "closed"


async def test_a_failed_trial_reopens_the_breaker():
    clock = Clock()
    breaker = _breaker("t-reopen", clock)
    for _ in range(4):
        with pytest.raises(TransientError):
            await breaker.call(_fail)
    clock.now += 31
    with pytest.raises(TransientError):
        await breaker.call(_fail)
    assert breaker.state.value == "open"


async def test_breaker_state_is_visible():
    clock = Clock()
    _breaker("t-visible", clock)
    states = {s["name"]: s for s in breaker_states()}
    assert states["t-visible"]["state"] == "closed"


async def test_call_remote_does_not_retry_through_an_open_breaker():
    clock = Clock()
    breaker = _breaker("t-open-no-retry", clock)
    for _ in range(4):
        with pytest.raises(TransientError):
            await breaker.call(_fail)
    with pytest.raises(CircuitOpen):
        await call_remote(_ok, timeout_s=1, attempts=5, breaker=breaker, backoff_initial_s=0.001)
    assert breaker.snapshot()["rejected"] == 1


async def test_a_reset_breaker_is_closed_and_lets_calls_through_again():
    breaker = _breaker("reset", Clock())
    for _ in range(4):
        with pytest.raises(TransientError):
            await breaker.call(_fail)
    with pytest.raises(CircuitOpen):
        await breaker.call(_ok)
    breaker.reset()
    assert breaker.state.value == "closed" and await breaker.call(_ok) == "ok"
    assert breaker.snapshot()["calls"] == 1
