"""Revoked access tokens stop working: at once in the revoking process, within recheck_s elsewhere."""

import asyncio
import time

import pytest

from medflow.auth.revocation import Revocations
from medflow.cache.memory import MemoryCache, MemoryStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingCache(MemoryCache):
    def __init__(self, store: MemoryStore) -> None:
        super().__init__(store)
        self.lookups = 0

    async def get_many(self, keys):
        self.lookups += 1
        return await super().get_many(keys)


async def test_a_busy_client_costs_one_cache_round_trip_per_recheck_interval():
    cache, clock = CountingCache(MemoryStore()), Clock()
    revocations = Revocations(cache, recheck_s=1.0, clock=clock)
    for _ in range(50):
        assert not await revocations.is_revoked("t1", "u1", issued_at=time.time())
    assert cache.lookups == 1
    clock.now += 1.5
    assert not await revocations.is_revoked("t1", "u1", issued_at=time.time())
    assert cache.lookups == 2


async def test_logout_in_this_process_denies_the_token_at_once():
    revocations = Revocations(MemoryCache(MemoryStore()), recheck_s=30.0)
    assert not await revocations.is_revoked("t1", "u1", issued_at=time.time())
    await revocations.deny("t1", expires_at=time.time() + 600)
    assert await revocations.is_revoked("t1", "u1", issued_at=time.time())


async def test_another_process_sees_a_revocation_within_the_recheck_interval():
    store, clock = MemoryStore(), Clock()
    reader = Revocations(MemoryCache(store), recheck_s=1.0, clock=clock)
    writer = Revocations(MemoryCache(store), recheck_s=1.0)
    issued = time.time() - 5
    assert not await reader.is_revoked("t1", "u1", issued_at=issued)
    await writer.revoke_user("u1", access_ttl_s=900)
    clock.now += 1.01
    assert await reader.is_revoked("t1", "u1", issued_at=issued)
    assert await reader.is_revoked("t1", "u1", issued_at=issued), "a revoked token is never remembered as clean"


async def test_recheck_zero_asks_the_cache_on_every_request():
    store = MemoryStore()
    reader = Revocations(MemoryCache(store), recheck_s=0)
    writer = Revocations(MemoryCache(store))
    assert not await reader.is_revoked("t1", "u1", issued_at=time.time())
    await writer.deny("t1", expires_at=time.time() + 600)
    assert await reader.is_revoked("t1", "u1", issued_at=time.time())


async def test_requests_checked_together_share_one_cache_round_trip():
    store = MemoryStore()
    cache = CountingCache(store)
    revocations = Revocations(cache, recheck_s=1.0)
    await Revocations(MemoryCache(store)).deny("t7", expires_at=time.time() + 600)
    answers = await asyncio.gather(*(revocations.is_revoked(f"t{i}", f"u{i}", issued_at=time.time())
                                     for i in range(20)))
    assert cache.lookups == 1
    assert answers == [i == 7 for i in range(20)]


class DownCache(MemoryCache):
    async def get_many(self, keys):
        raise ConnectionError("cache down")


async def test_a_cache_failure_reaches_every_waiting_request():
    revocations = Revocations(DownCache(MemoryStore()), recheck_s=1.0)
    results = await asyncio.gather(*(revocations.is_revoked(f"t{i}", "u", issued_at=time.time()) for i in range(3)),
                                   return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    with pytest.raises(ConnectionError):
        await revocations.is_revoked("t9", "u", issued_at=time.time())
