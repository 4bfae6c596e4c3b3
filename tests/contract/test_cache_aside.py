"""Cache-aside (medflow/cache/aside.py) against both cache backends: in-process and real Redis.

Each test builds its own ``CacheAside`` over the fresh backend of ``cache_backend``; two
instances over one backend stand for two processes sharing Redis (each with its own
process-local tier). The outage tests wrap
the cache in ``Outage``, a switchable double that raises what the Redis adapter raises
when Redis is unreachable.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from prometheus_client import generate_latest

from medflow.cache.aside import CacheAside, CacheKind, aside_for
from medflow.errors import TransientError

KIND = CacheKind("tests", ttl_min_s=100, ttl_max_s=200, negative_ttl_s=30)


class Source:
    """A source of truth that counts its loads and can be slowed down or changed."""

    def __init__(self, value: object = "v1", delay_s: float = 0.0) -> None:
        self.value, self.delay_s, self.loads = value, delay_s, 0

    async def load(self) -> object:
        self.loads += 1
        value = self.value  # read at the start, like a SQL query; returned after the delay
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return value


class Outage:
    """The backend's cache while ``down`` is false; Redis-down errors while it is true."""

    def __init__(self, cache, error: type[Exception] = TransientError) -> None:
        self._cache, self._error, self.down, self.calls = cache, error, False, 0

    def __getattr__(self, name: str):
        real = getattr(self._cache, name)

        async def call(*args, **kwargs):
            self.calls += 1
            if self.down:
                raise self._error("Redis is unavailable")
            return await real(*args, **kwargs)
        return call


class Clock:
    """Wall-clock seconds the test moves forward (soft expiry is wall-clock time)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def aside(cache_backend) -> CacheAside:
    return CacheAside(cache_backend.cache)


async def test_the_second_read_is_a_hit(aside):
    source = Source({"title": "Flu clinic", "n": [1, 2]})
    assert await aside.get(KIND, "inst1", "list", source.load) == {"title": "Flu clinic", "n": [1, 2]}
    assert await aside.get(KIND, "inst1", "list", source.load) == {"title": "Flu clinic", "n": [1, 2]}
    assert source.loads == 1
    stats = aside.stats()["tests"]
    assert (stats["hits"], stats["misses"], stats["loads"]) == (1, 1, 1)
    assert stats["hit_rate"] == 0.5 and stats["load_seconds"] >= 0


async def test_fifty_concurrent_reads_of_a_cold_key_load_once(aside):
    source = Source("v1", delay_s=0.05)
    results = await asyncio.gather(*(aside.get(KIND, "inst1", "hot", source.load) for _ in range(50)))
    assert results == ["v1"] * 50
    assert source.loads == 1


async def test_two_processes_on_one_cache_load_a_cold_key_once(cache_backend):
    first, second = CacheAside(cache_backend.cache), CacheAside(cache_backend.cache)
    source = Source("v1", delay_s=0.1)
    reads = [process.get(KIND, "inst1", "hot", source.load) for _ in range(25) for process in (first, second)]
    assert await asyncio.gather(*reads) == ["v1"] * 50
    assert source.loads == 1


async def test_a_write_invalidates_its_scope_and_only_its_scope(aside):
    mine, other = Source("v1"), Source("other")
    await aside.get(KIND, "inst1", "list", mine.load)
    await aside.get(KIND, "inst1", "one:42", mine.load)
    await aside.get(KIND, "inst2", "list", other.load)
    mine.value = "v2"
    assert await aside.invalidate(KIND, "inst1") is True
    assert await aside.get(KIND, "inst1", "list", mine.load) == "v2"
    assert await aside.get(KIND, "inst1", "one:42", mine.load) == "v2"
    assert await aside.get(KIND, "inst2", "list", other.load) == "other"
    assert (mine.loads, other.loads) == (4, 1)


async def test_another_process_sees_the_invalidation_within_its_local_ttl(cache_backend):
    reader = CacheAside(cache_backend.cache, local_ttl_s=0.3)
    writer = CacheAside(cache_backend.cache)
    source = Source("v1")
    assert await reader.get(KIND, "inst1", "list", source.load) == "v1"
    source.value = "v2"
    await writer.invalidate(KIND, "inst1")
    assert await writer.get(KIND, "inst1", "list", source.load) == "v2", "the writing process: at once"
    await asyncio.sleep(0.35)
    assert await reader.get(KIND, "inst1", "list", source.load) == "v2", "any other: within local_ttl_s"


async def test_without_a_local_tier_every_read_asks_the_shared_cache(cache_backend):
    reader, writer = CacheAside(cache_backend.cache, local_ttl_s=0), CacheAside(cache_backend.cache)
    source = Source("v1")
    assert await reader.get(KIND, "inst1", "list", source.load) == "v1"
    assert await reader.get(KIND, "inst1", "list", source.load) == "v1"
    source.value = "v2"
    await writer.invalidate(KIND, "inst1")
    assert await reader.get(KIND, "inst1", "list", source.load) == "v2"
    assert reader.stats()["tests"]["local_hits"] == 0


async def test_hot_reads_are_answered_by_the_process_without_a_cache_call(cache_backend):
    counting = Outage(cache_backend.cache)
    aside = CacheAside(counting, local_ttl_s=5)
    source = Source("v1")
    await aside.get(KIND, "inst1", "list", source.load)  # a miss: loaded and written to the cache
    await aside.get(KIND, "inst1", "list", source.load)  # a hit in the cache: kept by the process
    counting.calls = 0
    for _ in range(20):
        assert await aside.get(KIND, "inst1", "list", source.load) == "v1"
    assert counting.calls == 0 and source.loads == 1
    assert aside.stats()["tests"]["local_hits"] == 20


async def test_the_process_keeps_the_decoded_value(aside):
    decoded = []

    def decode(value):
        decoded.append(value)
        return tuple(value)

    source = Source([1, 2, 3])
    results = [await aside.get(KIND, "inst1", "list", source.load, decode) for _ in range(5)]
    assert results == [(1, 2, 3)] * 5
    assert len(decoded) == 2, "after the load and after the first cache hit; local hits reuse it"
    assert await aside.get(KIND, "inst1", "none", Source(None).load, decode) is None


async def test_the_local_tier_is_bounded(cache_backend):
    aside = CacheAside(cache_backend.cache, local_max_entries=5)
    for i in range(20):
        for _ in range(2):  # a load, then a hit that the process keeps
            await aside.get(KIND, "inst1", f"item{i}", Source(i).load)
    assert len(aside._local) == 5


async def test_a_load_that_finishes_after_a_write_is_never_served(aside):
    """The cache-aside race: a slow load of the old value writes back after the write's
    invalidation. Under generations it lands where nobody reads."""
    source = Source("old", delay_s=0.1)
    slow_read = asyncio.create_task(aside.get(KIND, "inst1", "list", source.load))
    await asyncio.sleep(0.02)  # the load has begun
    await aside.invalidate(KIND, "inst1")
    source.value, source.delay_s = "new", 0.0
    assert await slow_read == "old"  # that caller asked before the write
    assert await aside.get(KIND, "inst1", "list", source.load) == "new"


async def test_an_id_that_does_not_exist_is_cached_briefly(aside, cache_backend):
    source = Source(None)
    assert await aside.get(KIND, "inst1", "one:missing", source.load) is None
    assert await aside.get(KIND, "inst1", "one:missing", source.load) is None
    assert source.loads == 1
    stats = aside.stats()["tests"]
    assert stats["negative_hits"] == 1 and stats["hits"] == 1
    generation = (await cache_backend.cache.get("ca:tests:inst1:gen")).decode()
    left = await cache_backend.cache.ttl(f"ca:tests:inst1:{generation}:one:missing")
    assert left is not None and 25 <= left <= 30


async def test_ttls_are_jittered_within_the_kinds_range(aside, cache_backend):
    for i in range(20):
        await aside.get(KIND, "inst1", f"item{i}", Source(i).load)
    generation = (await cache_backend.cache.get("ca:tests:inst1:gen")).decode()
    ttls = [await cache_backend.cache.ttl(f"ca:tests:inst1:{generation}:item{i}") for i in range(20)]
    assert all(t is not None and KIND.ttl_min_s - 2 <= t <= KIND.ttl_max_s for t in ttls), ttls
    assert max(ttls) - min(ttls) > 10, "20 draws from [100, 200] s should spread"


async def test_a_stale_value_is_served_while_one_caller_refreshes_it(cache_backend):
    clock = Clock()
    aside = CacheAside(cache_backend.cache, clock=clock)
    source = Source("v1")
    await aside.get(KIND, "inst1", "list", source.load)
    clock.now += KIND.ttl_max_s  # past any soft expiry, before the hard TTL in the cache
    source.value, source.delay_s = "v2", 1.5  # a slow load: long enough to tell waiting from not waiting

    started = time.monotonic()
    refresher = asyncio.create_task(aside.get(KIND, "inst1", "list", source.load))
    await asyncio.sleep(0.2)  # it holds the refresh lock and is loading
    others = await asyncio.gather(*(aside.get(KIND, "inst1", "list", source.load) for _ in range(20)))
    assert others == ["v1"] * 20 and time.monotonic() - started < 1.2, "the others must not wait for the load"
    assert await refresher == "v2"
    assert await aside.get(KIND, "inst1", "list", source.load) == "v2"
    assert source.loads == 2
    assert aside.stats()["tests"]["stale_hits"] == 20


async def test_a_failed_load_is_not_cached_and_reaches_every_waiter(aside):
    calls = 0

    async def failing() -> object:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.02)
        raise RuntimeError("database down")

    results = await asyncio.gather(*(aside.get(KIND, "inst1", "x", failing) for _ in range(5)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results) and calls == 1
    assert await aside.get(KIND, "inst1", "x", Source("ok").load) == "ok"
    assert aside.stats()["tests"]["load_errors"] == 1


@pytest.mark.parametrize("error", [TransientError, ConnectionError, TimeoutError])
async def test_reads_fall_back_to_the_source_when_the_cache_is_down(cache_backend, caplog, error):
    outage = Outage(cache_backend.cache, error)
    aside = CacheAside(outage, cooloff_s=5.0, local_ttl_s=0)
    source = Source("v1", delay_s=0.02)
    await aside.get(KIND, "inst1", "list", source.load)
    outage.down, outage.calls, source.value = True, 0, "from sql"
    with caplog.at_level(logging.WARNING, logger="medflow.cache.aside"):
        results = [await aside.get(KIND, "inst1", "list", source.load) for _ in range(5)]
        concurrent = await asyncio.gather(*(aside.get(KIND, "inst1", "list", source.load) for _ in range(10)))
    assert results == ["from sql"] * 5 and concurrent == ["from sql"] * 10
    assert source.loads == 1 + 5 + 1, "concurrent fallbacks load once"
    assert outage.calls == 1, "one failed call, then the cache rests for its cool-off"
    warnings = [r for r in caplog.records if r.name == "medflow.cache.aside"]
    assert len(warnings) == 1 and warnings[0].error_type == error.__name__
    assert "redis" not in warnings[0].getMessage().lower()
    stats = aside.stats()["tests"]
    assert stats["fallbacks"] == 15 and stats["cache_errors"] == 1


async def test_after_an_outage_reads_use_the_cache_and_a_missed_invalidation_is_applied(cache_backend):
    outage = Outage(cache_backend.cache)
    aside = CacheAside(outage, cooloff_s=0.05, local_ttl_s=0)
    source = Source("v1")
    assert await aside.get(KIND, "inst1", "list", source.load) == "v1"
    outage.down, source.value = True, "v2"
    assert await aside.invalidate(KIND, "inst1") is False  # the write itself succeeded in SQL
    outage.down = False
    await asyncio.sleep(0.06)
    assert await aside.get(KIND, "inst1", "list", source.load) == "v2", "the pending bump went first"
    assert await aside.get(KIND, "inst1", "list", source.load) == "v2"
    assert source.loads == 2


async def test_switched_off_every_read_loads(aside):
    aside.enabled = False
    source = Source("v1")
    for _ in range(3):
        assert await aside.get(KIND, "inst1", "list", source.load) == "v1"
    assert source.loads == 3 and aside.stats()["tests"]["uncached"] == 3


async def test_values_round_trip_as_json(aside):
    value = {"text": "发热门诊 fever clinic", "nested": [{"a": None, "b": 1.5, "c": True}]}
    await aside.get(KIND, "inst1", "json", Source(value).load)
    assert await aside.get(KIND, "inst1", "json", Source("unused").load) == value


async def test_one_aside_per_cache_and_prometheus_counters_by_kind(cache_backend):
    assert aside_for(cache_backend.cache) is aside_for(cache_backend.cache)
    kind = CacheKind("tests_metrics", 100, 200)
    aside = aside_for(cache_backend.cache)
    await aside.get(kind, "inst1", "x", Source(1).load)
    await aside.get(kind, "inst1", "x", Source(1).load)
    text = generate_latest().decode()
    assert 'medflow_cache_hits_total{kind="tests_metrics"}' in text
    assert 'medflow_cache_misses_total{kind="tests_metrics"}' in text
    assert 'medflow_cache_load_seconds_count{kind="tests_metrics"}' in text


def test_a_kind_needs_a_sensible_range():
    with pytest.raises(ValueError):
        CacheKind("bad", 10, 5)
