"""Cache-aside for read-mostly data (announcements, doctor profiles, dictionaries).

A read asks the cache first; on a miss it loads from SQL (the caller's ``load``) and writes
the value back. Values are JSON (callers hand in and get back JSON-compatible data).

Keys and versions
    Every cached read belongs to a *scope*: the thing whose writes must invalidate it, e.g.
    one institution's announcements. The scope has a *generation*, a random token kept in
    the cache under ``ca:<kind>:<scope>:gen``, and every value key carries it:
    ``ca:<kind>:<scope>:<generation>:<item>``. A write replaces the generation with a fresh
    token (one SET; random tokens need no INCR), so every page, id and filter cached for
    the scope becomes unreachable at once; the orphans expire by their TTL. A load that
    began before a write and writes back after it lands under the old generation, where
    nobody reads any more: the classic cache-aside race (a stale load written back after
    the delete) cannot serve stale data.

Expiry
    The TTL in the cache (hard expiry) is drawn uniformly in the kind's range, so keys
    filled together do not expire together. A value is *fresh* for the first
    ``soft_fraction`` of its life and *stale* after: then the one caller that wins the
    refresh lock reloads it while every other caller is answered the stale value at once
    (stale-while-revalidate). A write never leaves a stale value readable: it changes the key.

Single flight
    In one process, one task fills a key and every concurrent caller awaits it. Across
    processes, the filler first takes a short fill lock (``SET NX PX`` through
    ``Cache.add``); the others poll for the value for up to ``fill_wait_s`` and then load
    it themselves. The lock only saves duplicate work (generations keep a late write-back
    harmless), so it needs no watchdog nor fencing, and expires by itself.

Process-local tier
    Each process also keeps the entries it has read (at most ``local_max_entries``, least
    recently used dropped first) and trusts a generation token it read for
    ``local_ttl_s`` (1 s). A hot read is then answered without any cache call; the shared
    cache is asked again once a second per scope. A write is seen at once by the process
    that made it (its bump replaces the token it trusts) and by every other process within
    ``local_ttl_s``; ``local_ttl_s=0`` asks the cache on every read. Returned values are
    shared between callers: treat them as read-only.

Negative caching
    ``load`` returns None for "does not exist"; that answer is cached for the kind's
    ``negative_ttl_s`` (seconds, not minutes), so unknown ids do not reach SQL every time.

Outage
    When a cache call fails (``TransientError`` from the Redis adapter, or any connection or
    time-out error), the read is answered by ``load`` (still one load per key in flight) and
    the cache is left alone for ``cooloff_s``, so a dead Redis costs one failed call per
    process per cool-off, not one per request. It is logged at most once per
    ``log_interval_s``, with the error type only. A generation bump that fails is kept and
    retried before the next read that reaches the cache again; until then (or, if the
    process ends first, until the TTL) readers of that scope may see the old value.

Switch
    ``enabled=False`` (``MEDFLOW_CACHE_ASIDE=off``) answers every read from ``load``: the
    uncached baseline of ``bench/cache_read.py``.

Counters: per-process ``stats()`` and the Prometheus metrics ``medflow_cache_*`` labelled
by kind (``medflow/runtime/metrics.py``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable
from weakref import WeakKeyDictionary

from medflow.cache.ports import Cache
from medflow.errors import TransientError
from medflow.runtime import metrics

if TYPE_CHECKING:
    from medflow.bootstrap import Services

log = logging.getLogger("medflow.cache.aside")

Loader = Callable[[], Awaitable[Any]]
"""Loads a value from the source of truth: JSON-compatible data, or None for "does not exist"."""

CACHE_FAILURES = (TransientError, ConnectionError, OSError, TimeoutError)
"""What a cache call may raise when the cache is unreachable (the service then reads SQL)."""

GENERATION_TTL_S = 86_400.0
"""A generation token lives a day; when it expires a new one is made and the scope misses once."""


@dataclass(frozen=True)
class CacheKind:
    """One family of cached reads and its expiry rules."""

    name: str
    ttl_min_s: float
    ttl_max_s: float
    negative_ttl_s: float = 30.0
    soft_fraction: float = 0.8

    def __post_init__(self) -> None:
        if not 0 < self.ttl_min_s <= self.ttl_max_s:
            raise ValueError(f"cache kind {self.name}: need 0 < ttl_min_s <= ttl_max_s")
        if not 0 < self.soft_fraction <= 1:
            raise ValueError(f"cache kind {self.name}: soft_fraction must be in (0, 1]")

    def pick_ttl(self, rng: random.Random) -> float:
        """A TTL drawn uniformly in the kind's range (the jitter)."""
        return rng.uniform(self.ttl_min_s, self.ttl_max_s)


@dataclass
class KindStats:
    """What one kind's reads did in this process."""

    hits: int = 0            # answered from the cache (fresh, stale or "does not exist")
    local_hits: int = 0      # of which from this process's own copy, without a cache call
    stale_hits: int = 0      # of which a stale value while one caller refreshed it
    negative_hits: int = 0   # of which a cached "does not exist"
    misses: int = 0          # not in the cache: waited for a load
    loads: int = 0           # calls of the loader
    load_errors: int = 0     # loader calls that raised
    load_seconds: float = 0.0
    fallbacks: int = 0       # answered by the loader because the cache failed
    uncached: int = 0        # answered by the loader because cache-aside is switched off
    cache_errors: int = 0    # failed cache calls
    invalidations: int = 0   # generation bumps asked for

    def snapshot(self) -> dict[str, float]:
        looked_up = self.hits + self.misses
        return {**vars(self), "load_seconds": round(self.load_seconds, 6),
                "hit_rate": round(self.hits / looked_up, 6) if looked_up else 0.0}


@dataclass(frozen=True)
class _Entry:
    """A cached answer: the value, or "does not exist", and when it stops being fresh."""

    found: bool
    value: Any
    soft_expiry: float  # wall-clock seconds: entries are shared by processes

    def encode(self) -> bytes:
        body = {"soft": self.soft_expiry, "value": self.value} if self.found else {"soft": self.soft_expiry, "missing": True}
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()

    @staticmethod
    def decode(raw: bytes) -> "_Entry":
        body = json.loads(raw)
        return _Entry(not body.get("missing", False), body.get("value"), float(body["soft"]))


class _CacheDown(Exception):
    """A cache call failed; the read goes to the loader."""


@dataclass
class _Metrics:
    """The Prometheus children of one kind, bound once (labels() per read costs a lookup)."""

    hits: Any
    stale: Any
    negative: Any
    misses: Any
    loads: Any
    load_seconds: Any
    fallbacks: Any
    uncached: Any
    invalidations: Any

    @staticmethod
    def of(kind: str) -> "_Metrics":
        return _Metrics(metrics.CACHE_HITS.labels(kind), metrics.CACHE_STALE_HITS.labels(kind),
                        metrics.CACHE_NEGATIVE_HITS.labels(kind), metrics.CACHE_MISSES.labels(kind),
                        metrics.CACHE_LOADS.labels(kind), metrics.CACHE_LOAD_SECONDS.labels(kind),
                        metrics.CACHE_FALLBACKS.labels(kind), metrics.CACHE_UNCACHED.labels(kind),
                        metrics.CACHE_INVALIDATIONS.labels(kind))


@dataclass
class _Counters:
    stats: KindStats
    prom: _Metrics


@dataclass
class CacheAside:
    """Cache-aside reads and generation-bump invalidation over one ``Cache``.

    One instance per process and cache (see ``aside_for``): its in-flight loads and
    counters are shared by every request of the process.
    """

    cache: Cache
    enabled: bool = True
    local_ttl_s: float = 1.0
    local_max_entries: int = 10_000
    fill_lock_ttl_s: float = 5.0
    fill_wait_s: float = 2.0
    cooloff_s: float = 1.0
    log_interval_s: float = 60.0
    clock: Callable[[], float] = time.time
    rng: random.Random = field(default_factory=random.Random)
    _inflight: dict[str, asyncio.Future] = field(default_factory=dict, init=False, repr=False)
    _counters: dict[str, _Counters] = field(default_factory=dict, init=False, repr=False)
    _pending_bumps: set[tuple[CacheKind, str]] = field(default_factory=set, init=False, repr=False)
    _generations: dict[str, tuple[str, float]] = field(default_factory=dict, init=False, repr=False)
    _local: OrderedDict[str, _Entry] = field(default_factory=OrderedDict, init=False, repr=False)
    _skip_cache_until: float = field(default=0.0, init=False, repr=False)
    _last_logged: float = field(default=float("-inf"), init=False, repr=False)
    _suppressed_logs: int = field(default=0, init=False, repr=False)

    # --- reading ---------------------------------------------------------------------------

    async def get(self, kind: CacheKind, scope: str, item: str, load: Loader,
                  decode: Callable[[Any], Any] | None = None) -> Any:
        """The value of ``item`` in ``scope``: from the cache, else from ``load`` (written back).

        ``scope`` names what a write invalidates (e.g. an institution id); ``item`` the read
        within it (e.g. ``"list:doctors:20:-"``). ``decode`` turns the JSON value into what
        the caller uses (e.g. frozen dataclasses); the process-local tier keeps the decoded
        value, so a local hit costs no decoding. Returns None when ``load`` said the thing
        does not exist. Errors of ``load`` propagate and nothing is cached for them.
        """
        counters = self._counters_of(kind)
        decode = decode or _as_is
        if not self.enabled:
            counters.stats.uncached += 1
            counters.prom.uncached.inc()
            return _decoded(decode, await self._timed_load(counters, load))
        if self._cache_resting():
            return _decoded(decode, await self._fallback(kind, scope, item, load))
        try:
            await self._flush_pending_bumps()
            key = self._value_key(kind, scope, await self._generation(kind, scope), item)
            local = self._local_entry(key)
            if local is not None:
                counters.stats.local_hits += 1
                self._count_hit(counters, local)
                return local.value
            entry = await self._read(kind, key)
        except _CacheDown:
            return _decoded(decode, await self._fallback(kind, scope, item, load))
        if entry is None:
            self._count_miss(counters)
            return _decoded(decode, await self._single_flight(key, lambda: self._fill(kind, key, load)))
        if entry.soft_expiry <= self.clock():
            return _decoded(decode, await self._stale_or_refresh(kind, key, entry, load))
        self._count_hit(counters, entry)
        value = _decoded(decode, entry.value)
        self._remember(key, _Entry(entry.found, value, entry.soft_expiry))
        return value

    async def _stale_or_refresh(self, kind: CacheKind, key: str, entry: _Entry, load: Loader) -> Any:
        """The caller that wins the refresh lock reloads; every other caller gets the stale value."""
        counters = self._counters_of(kind)
        if key not in self._inflight:
            try:
                won = await self._call(kind, self.cache.add(self._lock_key(key, "refresh"), b"1", self.fill_lock_ttl_s))
            except _CacheDown:
                won = False
            if won:
                self._count_miss(counters)
                return await self._single_flight(key, lambda: self._load_and_store(kind, key, load))
        counters.stats.stale_hits += 1
        counters.prom.stale.inc()
        self._count_hit(counters, entry)
        return entry.value

    async def _fill(self, kind: CacheKind, key: str, load: Loader) -> Any:
        """Fill a missing key once across processes: take the fill lock and load, or wait for
        the holder's value (loading ourselves if it does not come within ``fill_wait_s``)."""
        try:
            if not await self._call(kind, self.cache.add(self._lock_key(key, "fill"), b"1", self.fill_lock_ttl_s)):
                found = await self._wait_for_value(kind, key)
                if found is not None:
                    return found.value
            else:
                found = await self._read(kind, key)  # filled between our miss and our lock
                if found is not None:
                    return found.value
        except _CacheDown:
            return await self._timed_load(self._counters_of(kind), load)
        return await self._load_and_store(kind, key, load)

    async def _wait_for_value(self, kind: CacheKind, key: str) -> _Entry | None:
        """Poll for the value another process is loading (5 ms, doubling to 50 ms)."""
        deadline = time.monotonic() + self.fill_wait_s
        pause = 0.005
        while time.monotonic() < deadline:
            await asyncio.sleep(pause)
            found = await self._read(kind, key)
            if found is not None:
                return found
            pause = min(pause * 2, 0.05)
        return None

    async def _load_and_store(self, kind: CacheKind, key: str, load: Loader) -> Any:
        counters = self._counters_of(kind)
        try:
            value = await self._timed_load(counters, load)
        except BaseException:
            await self._release_fill_lock(kind, key)
            raise
        await self._store(kind, key, value)
        return value

    async def _store(self, kind: CacheKind, key: str, value: Any) -> None:
        """Write the loaded value back with a jittered TTL ("does not exist" briefly)."""
        found = value is not None
        ttl = kind.pick_ttl(self.rng) if found else kind.negative_ttl_s
        soft_ttl = ttl * kind.soft_fraction if found else ttl
        entry = _Entry(found, value, self.clock() + soft_ttl)
        try:
            await self._call(kind, self.cache.set(key, entry.encode(), ttl))
        except _CacheDown:
            pass

    async def _release_fill_lock(self, kind: CacheKind, key: str) -> None:
        """After a failed load, let the next caller try at once rather than after the lock's TTL."""
        try:
            await self._call(kind, self.cache.delete(self._lock_key(key, "fill")))
        except _CacheDown:
            pass

    async def _fallback(self, kind: CacheKind, scope: str, item: str, load: Loader) -> Any:
        """The cache is down: answer from the loader, one load per key in flight."""
        counters = self._counters_of(kind)
        counters.stats.fallbacks += 1
        counters.prom.fallbacks.inc()
        key = f"fallback:{kind.name}:{scope}:{item}"
        return await self._single_flight(key, lambda: self._timed_load(counters, load))

    async def _single_flight(self, key: str, fill: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``fill`` once for every concurrent caller of ``key`` in this process.

        The fill runs as its own task, so a caller that goes away (a client disconnects)
        does not cancel it for the others.
        """
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(fill())
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._forget_inflight(key, done))
        return await asyncio.shield(task)

    def _forget_inflight(self, key: str, done: asyncio.Future) -> None:
        if self._inflight.get(key) is done:
            del self._inflight[key]
        if not done.cancelled():
            done.exception()  # retrieved: a failure reaches the awaiting callers, not the loop's log

    async def _timed_load(self, counters: _Counters, load: Loader) -> Any:
        started = time.perf_counter()
        counters.stats.loads += 1
        counters.prom.loads.inc()
        try:
            return await load()
        except BaseException:
            counters.stats.load_errors += 1
            raise
        finally:
            elapsed = time.perf_counter() - started
            counters.stats.load_seconds += elapsed
            counters.prom.load_seconds.observe(elapsed)

    # --- invalidating ----------------------------------------------------------------------

    async def invalidate(self, kind: CacheKind, scope: str) -> bool:
        """Make every cached read of ``scope`` unreachable (one generation bump).

        Call it after the write has committed. Never raises for a cache failure: the bump is
        kept and retried before the next read that reaches the cache; returns False then.
        """
        counters = self._counters_of(kind)
        counters.stats.invalidations += 1
        counters.prom.invalidations.inc()
        try:
            await self._bump(kind, scope)
            return True
        except _CacheDown:
            self._pending_bumps.add((kind, scope))
            return False

    async def _bump(self, kind: CacheKind, scope: str) -> None:
        key, token = self._generation_key(kind, scope), _new_generation()
        self._generations.pop(key, None)
        await self._call(kind, self.cache.set(key, token, GENERATION_TTL_S))
        self._generations[key] = (token.decode(), time.monotonic())  # this process sees its write at once

    async def _flush_pending_bumps(self) -> None:
        while self._pending_bumps:
            kind, scope = next(iter(self._pending_bumps))
            await self._bump(kind, scope)
            self._pending_bumps.discard((kind, scope))

    # --- keys and cache calls --------------------------------------------------------------

    @staticmethod
    def _generation_key(kind: CacheKind, scope: str) -> str:
        return f"ca:{kind.name}:{scope}:gen"

    @staticmethod
    def _value_key(kind: CacheKind, scope: str, generation: str, item: str) -> str:
        return f"ca:{kind.name}:{scope}:{generation}:{item}"

    @staticmethod
    def _lock_key(value_key: str, purpose: str) -> str:
        """The fill lock (a missing value) or the refresh lock (a stale one) of a value key.

        Neither is deleted after a successful load: a caller whose miss was answered just
        before the value landed then finds the lock taken and the value there, instead of
        loading a second time. They expire after ``fill_lock_ttl_s``.
        """
        return f"{value_key}:{purpose}"

    async def _generation(self, kind: CacheKind, scope: str) -> str:
        """The scope's current generation token, made on first use."""
        key = self._generation_key(kind, scope)
        known = self._generations.get(key)
        if known is not None and time.monotonic() - known[1] < self.local_ttl_s:
            return known[0]
        token = await self._call(kind, self.cache.get(key))
        if token is None:
            made = _new_generation()
            if await self._call(kind, self.cache.add(key, made, GENERATION_TTL_S)):
                token = made
            else:  # another caller made it first
                token = await self._call(kind, self.cache.get(key)) or made
        self._generations[key] = (token.decode(), time.monotonic())
        return token.decode()

    async def _read(self, kind: CacheKind, key: str) -> _Entry | None:
        raw = await self._call(kind, self.cache.get(key))
        if raw is None:
            return None
        try:
            entry = _Entry.decode(raw)
        except (ValueError, KeyError, TypeError):
            return None  # not ours or from an older format: reload over it
        return entry

    # --- the process-local tier ------------------------------------------------------------

    def _local_entry(self, key: str) -> _Entry | None:
        """A fresh entry this process already holds for ``key``, its value decoded (a
        versioned key: a write elsewhere changes the key once this process re-reads the
        generation). Filled by the next hit after a load, not by the load itself."""
        entry = self._local.get(key)
        if entry is None:
            return None
        if entry.soft_expiry <= self.clock():
            del self._local[key]
            return None
        self._local.move_to_end(key)
        return entry

    def _remember(self, key: str, entry: _Entry) -> None:
        if self.local_ttl_s <= 0:
            return
        self._local[key] = entry
        self._local.move_to_end(key)
        while len(self._local) > self.local_max_entries:
            self._local.popitem(last=False)

    async def _call(self, kind: CacheKind, pending: Awaitable[Any]) -> Any:
        """Await one cache call; a failure becomes ``_CacheDown`` and rests the cache a while."""
        try:
            return await pending
        except CACHE_FAILURES as exc:
            self._cache_failed(kind, exc)
            raise _CacheDown from None

    def _cache_resting(self) -> bool:
        return self._skip_cache_until > time.monotonic()

    def _cache_failed(self, kind: CacheKind, exc: BaseException) -> None:
        """Count the failure, rest the cache for ``cooloff_s``, log at most once per interval."""
        now = time.monotonic()
        self._skip_cache_until = now + self.cooloff_s
        self._counters_of(kind).stats.cache_errors += 1
        metrics.CACHE_ERRORS.labels(kind.name).inc()
        if now - self._last_logged >= self.log_interval_s:
            log.warning("cache unavailable: reads are served from the database",
                        extra={"kind": kind.name, "error_type": type(exc).__name__, "suppressed": self._suppressed_logs,
                               "retry_in_s": self.cooloff_s})
            self._last_logged, self._suppressed_logs = now, 0
        else:
            self._suppressed_logs += 1

    # --- counters --------------------------------------------------------------------------

    def _counters_of(self, kind: CacheKind) -> _Counters:
        counters = self._counters.get(kind.name)
        if counters is None:
            counters = self._counters[kind.name] = _Counters(KindStats(), _Metrics.of(kind.name))
        return counters

    @staticmethod
    def _count_hit(counters: _Counters, entry: _Entry) -> None:
        counters.stats.hits += 1
        counters.prom.hits.inc()
        if not entry.found:
            counters.stats.negative_hits += 1
            counters.prom.negative.inc()

    @staticmethod
    def _count_miss(counters: _Counters) -> None:
        counters.stats.misses += 1
        counters.prom.misses.inc()

    def stats(self) -> dict[str, dict[str, float]]:
        """Per kind: hits, misses, loads, load time, fallbacks ... and the hit rate, this process."""
        return {name: c.stats.snapshot() for name, c in self._counters.items()}


def _as_is(value: Any) -> Any:
    return value


def _decoded(decode: Callable[[Any], Any], value: Any) -> Any:
    return None if value is None else decode(value)


def _new_generation() -> bytes:
    return secrets.token_hex(8).encode()


_ASIDES: "WeakKeyDictionary[Any, CacheAside]" = WeakKeyDictionary()


def aside_for(cache: Cache) -> CacheAside:
    """The process's one ``CacheAside`` over ``cache`` (made on first use).

    Sharing it is what makes single flight and the counters span every request.
    """
    aside = _ASIDES.get(cache)
    if aside is None:
        aside = _ASIDES[cache] = CacheAside(cache)
    return aside


def as_aside(cache: "Cache | CacheAside") -> CacheAside:
    """Use cases accept either the process's ``CacheAside`` or a plain ``Cache``."""
    return cache if isinstance(cache, CacheAside) else aside_for(cache)


def cache_aside(services: "Services") -> CacheAside:
    """The cache-aside of a composition root, switched on or off by ``MEDFLOW_CACHE_ASIDE``."""
    aside = aside_for(services.cache.cache)
    aside.enabled = services.settings.cache_aside
    return aside
