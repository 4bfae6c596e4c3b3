"""One contract for every cache backend: each test runs against memory and real Redis.

Timings are short (TTLs of a few hundred ms) with generous margins either side.
"""

from __future__ import annotations

import asyncio
import copy
import socket
import time

import pytest

BINARY = bytes(range(256)) + b"\xff\xfe\x00\x80"


async def eventually(check, timeout_s: float = 2.0) -> bool:
    """Poll an async predicate until it holds or the time is up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.02)
    return False


async def next_message(iterator, timeout_s: float = 2.0) -> bytes:
    return await asyncio.wait_for(anext(iterator), timeout_s)


# --- cache -----------------------------------------------------------------------------


async def test_set_get_delete(cache_backend):
    cache = cache_backend.cache
    assert await cache.get("k") is None
    await cache.set("k", b"v1")
    assert await cache.get("k") == b"v1"
    await cache.set("k", b"v2")
    assert await cache.get("k") == b"v2"
    assert await cache.delete("k") is True
    assert await cache.get("k") is None
    assert await cache.delete("k") is False


async def test_binary_values_round_trip(cache_backend):
    await cache_backend.cache.set("bin", BINARY)
    assert await cache_backend.cache.get("bin") == BINARY
    assert await cache_backend.cache.add("bin2", BINARY) is True
    assert await cache_backend.cache.get("bin2") == BINARY


async def test_value_expires_after_ttl(cache_backend):
    cache = cache_backend.cache
    await cache.set("short", b"v", ttl_s=0.2)
    left = await cache.ttl("short")
    assert left is not None and 0 < left <= 0.2
    assert await cache.get("short") == b"v"
    await asyncio.sleep(0.35)
    assert await cache.get("short") is None
    assert await cache.ttl("short") is None


async def test_ttl_is_none_without_expiry_or_key(cache_backend):
    await cache_backend.cache.set("forever", b"v")
    assert await cache_backend.cache.ttl("forever") is None
    assert await cache_backend.cache.ttl("missing") is None


async def test_set_without_ttl_clears_previous_expiry(cache_backend):
    cache = cache_backend.cache
    await cache.set("k", b"old", ttl_s=0.2)
    await cache.set("k", b"new")
    await asyncio.sleep(0.35)
    assert await cache.get("k") == b"new"


async def test_add_only_when_absent(cache_backend):
    cache = cache_backend.cache
    assert await cache.add("once", b"first", ttl_s=0.2) is True
    assert await cache.add("once", b"second") is False
    assert await cache.get("once") == b"first"
    await asyncio.sleep(0.35)
    assert await cache.add("once", b"third") is True
    assert await cache.get("once") == b"third"


# --- locks -----------------------------------------------------------------------------


async def test_lock_is_mutually_exclusive(cache_backend):
    locks = cache_backend.locks
    first = await locks.acquire("job", ttl_s=5)
    assert first is not None
    assert await locks.holder("job") == first.token
    assert await locks.acquire("job", ttl_s=5) is None
    started = time.monotonic()
    assert await locks.acquire("job", ttl_s=5, wait_s=0.2) is None
    assert time.monotonic() - started >= 0.15
    assert await first.release() is True
    assert await locks.holder("job") is None
    second = await locks.acquire("job", ttl_s=5)
    assert second is not None and second.token != first.token
    assert await second.release() is True


async def test_waiter_acquires_once_holder_releases(cache_backend):
    locks = cache_backend.locks
    first = await locks.acquire("job", ttl_s=5)
    waiter = asyncio.create_task(locks.acquire("job", ttl_s=5, wait_s=3))
    await asyncio.sleep(0.2)
    assert not waiter.done()
    started = time.monotonic()
    assert await first.release() is True
    second = await asyncio.wait_for(waiter, 2)
    assert second is not None
    assert time.monotonic() - started < 1.0
    assert await locks.holder("job") == second.token
    assert await second.release() is True


async def test_different_locks_do_not_block_each_other(cache_backend):
    a = await cache_backend.locks.acquire("a", ttl_s=5)
    b = await cache_backend.locks.acquire("b", ttl_s=5)
    assert a is not None and b is not None
    assert await a.release() and await b.release()


async def test_release_with_another_token_is_refused(cache_backend):
    locks = cache_backend.locks
    lock = await locks.acquire("job", ttl_s=5, watchdog=False)
    impostor = copy.copy(lock)
    impostor.token = "not-the-holders-token"
    assert await impostor.release() is False
    assert await impostor.renew() is False
    assert await locks.holder("job") == lock.token
    assert await locks.acquire("job", ttl_s=5) is None
    assert await lock.release() is True


async def test_expired_holder_cannot_release_the_next_holders_lock(cache_backend):
    locks = cache_backend.locks
    slow = await locks.acquire("job", ttl_s=0.2, watchdog=False)
    await asyncio.sleep(0.35)  # the slow holder outlives its TTL, with no watchdog
    fast = await locks.acquire("job", ttl_s=5, watchdog=False)
    assert fast is not None
    assert await slow.release() is False
    assert await slow.renew() is False
    assert await locks.holder("job") == fast.token
    assert await locks.acquire("job", ttl_s=5) is None
    assert await fast.release() is True


async def test_renew_extends_the_ttl(cache_backend):
    lock = await cache_backend.locks.acquire("job", ttl_s=0.3, watchdog=False)
    await asyncio.sleep(0.2)
    assert await lock.renew() is True
    await asyncio.sleep(0.2)  # 0.4 s after acquiring: alive only thanks to the renewal
    assert await cache_backend.locks.holder("job") == lock.token
    assert await lock.release() is True


async def test_watchdog_keeps_lock_while_holder_works(cache_backend):
    locks = cache_backend.locks
    lock = await locks.acquire("job", ttl_s=0.3)
    deadline = time.monotonic() + 1.2  # four TTLs
    while time.monotonic() < deadline:
        assert await locks.acquire("job", ttl_s=5) is None
        await asyncio.sleep(0.05)
    assert not lock.lost
    assert await locks.holder("job") == lock.token
    assert await lock.release() is True
    assert await locks.holder("job") is None


@pytest.mark.parametrize("steal", ["overwrite", "delete"])
async def test_watchdog_marks_lock_lost_when_key_is_taken(cache_backend, steal):
    lock = await cache_backend.locks.acquire("job", ttl_s=0.3)
    if steal == "overwrite":
        await cache_backend.cache.set("job", b"someone-else")
    else:
        await cache_backend.cache.delete("job")
    assert await eventually(lambda: _is_lost(lock), timeout_s=1.0)
    assert await lock.release() is False
    expected = b"someone-else" if steal == "overwrite" else None
    assert await cache_backend.cache.get("job") == expected


async def _is_lost(lock) -> bool:
    return lock.lost


# --- rate limiter ----------------------------------------------------------------------


async def test_rate_limit_allows_exactly_limit_per_window(cache_backend):
    limiter = cache_backend.rate_limiter
    decisions = [await limiter.hit("ip:1", limit=3, window_s=0.5) for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, True]
    assert [d.remaining for d in decisions] == [2, 1, 0]
    denied = await limiter.hit("ip:1", limit=3, window_s=0.5)
    assert denied.allowed is False and denied.remaining == 0
    assert 0 < denied.retry_after_s <= 0.5
    assert (await limiter.hit("ip:2", limit=3, window_s=0.5)).allowed  # other keys are separate
    await asyncio.sleep(denied.retry_after_s + 0.05)
    again = await limiter.hit("ip:1", limit=3, window_s=0.5)
    assert again.allowed is True and again.remaining == 2


async def test_rate_limit_window_slides(cache_backend):
    limiter = cache_backend.rate_limiter
    assert (await limiter.hit("user", limit=2, window_s=0.6)).allowed
    await asyncio.sleep(0.3)
    assert (await limiter.hit("user", limit=2, window_s=0.6)).allowed
    denied = await limiter.hit("user", limit=2, window_s=0.6)
    assert not denied.allowed
    assert 0.1 < denied.retry_after_s <= 0.35  # the first hit leaves the window first
    await asyncio.sleep(denied.retry_after_s + 0.05)
    assert (await limiter.hit("user", limit=2, window_s=0.6)).allowed  # the first hit has aged out
    assert not (await limiter.hit("user", limit=2, window_s=0.6)).allowed  # the second has not


async def test_denied_hits_do_not_count(cache_backend):
    limiter = cache_backend.rate_limiter
    assert (await limiter.hit("k", limit=1, window_s=0.4)).allowed
    for _ in range(5):
        assert not (await limiter.hit("k", limit=1, window_s=0.4)).allowed
    await asyncio.sleep(0.45)
    assert (await limiter.hit("k", limit=1, window_s=0.4)).allowed


async def test_rate_limit_reset_forgets_hits(cache_backend):
    limiter = cache_backend.rate_limiter
    await limiter.hit("k", limit=1, window_s=10)
    assert not (await limiter.hit("k", limit=1, window_s=10)).allowed
    await limiter.reset("k")
    assert (await limiter.hit("k", limit=1, window_s=10)).allowed


async def test_rate_limit_of_zero_denies_everything(cache_backend):
    denied = await cache_backend.rate_limiter.hit("closed", limit=0, window_s=2)
    assert denied.allowed is False and denied.remaining == 0
    assert denied.retry_after_s == pytest.approx(2, abs=0.01)


# --- pub/sub ---------------------------------------------------------------------------


async def test_publish_reaches_every_subscriber(cache_backend):
    pubsub = cache_backend.pubsub
    first, second = await pubsub.subscribe("news"), await pubsub.subscribe("news")
    it1, it2 = aiter(first), aiter(second)
    assert await pubsub.publish("news", b"one") == 2
    assert await pubsub.publish("news", BINARY) == 2
    assert [await next_message(it1), await next_message(it1)] == [b"one", BINARY]
    assert [await next_message(it2), await next_message(it2)] == [b"one", BINARY]
    await first.close()
    await second.close()


async def test_closed_subscriber_gets_nothing_more(cache_backend):
    pubsub = cache_backend.pubsub
    staying, leaving = await pubsub.subscribe("news"), await pubsub.subscribe("news")
    await leaving.close()
    assert await pubsub.publish("news", b"after") == 1
    assert await next_message(aiter(staying)) == b"after"
    assert await asyncio.wait_for(_drain(leaving), 2) == []  # iteration ends, empty
    await staying.close()
    assert await pubsub.publish("news", b"nobody") == 0


async def test_channels_are_separate(cache_backend):
    pubsub = cache_backend.pubsub
    sub = await pubsub.subscribe("a")
    assert await pubsub.publish("b", b"elsewhere") == 0
    assert await pubsub.publish("a", b"here") == 1
    assert await next_message(aiter(sub)) == b"here"
    await sub.close()


async def _drain(subscription) -> list[bytes]:
    return [message async for message in subscription]


# --- Redis adapter only ------------------------------------------------------------------


async def test_unreachable_redis_raises_transient_error():
    """Callers retry on TransientError, so a dead Redis must not surface as a raw driver error."""
    from medflow.cache.redis import RedisCacheBackend
    from medflow.errors import TransientError

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = RedisCacheBackend(f"redis://127.0.0.1:{port}/0")
    try:
        assert await backend.ping() is False
        with pytest.raises(TransientError):
            await backend.cache.get("k")
        with pytest.raises(TransientError):
            await backend.locks.acquire("k", ttl_s=1)
        with pytest.raises(TransientError):
            await backend.rate_limiter.hit("k", limit=1, window_s=1)
        with pytest.raises(TransientError):
            await backend.pubsub.subscribe("c")
    finally:
        await backend.close()


async def test_get_many_reads_several_keys_in_order(cache_backend):
    cache = cache_backend.cache
    await cache.set("a", b"1")
    await cache.set("c", b"\xff3")
    assert await cache.get_many(["a", "b", "c"]) == [b"1", None, b"\xff3"]
