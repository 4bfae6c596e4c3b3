"""In-process cache backend for the embedded default: one process, same contract as Redis."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from typing import AsyncIterator

from medflow.cache.ports import RateDecision
from medflow.cache.locking import HeldLock, acquire_token


class MemoryStore:
    """A dict with per-key expiry on a monotonic clock."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[bytes, float | None]] = {}

    def _live(self, key: str) -> tuple[bytes, float | None] | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[1] is not None and item[1] <= time.monotonic():
            del self._data[key]
            return None
        return item

    def get(self, key: str) -> bytes | None:
        item = self._live(key)
        return item[0] if item else None

    def set(self, key: str, value: bytes, ttl_s: float | None) -> None:
        expires = time.monotonic() + ttl_s if ttl_s else None
        self._data[key] = (value, expires)

    def expire(self, key: str, ttl_s: float) -> bool:
        item = self._live(key)
        if item is None:
            return False
        self._data[key] = (item[0], time.monotonic() + ttl_s)
        return True

    def delete(self, key: str) -> bool:
        return self._live(key) is not None and self._data.pop(key, None) is not None

    def ttl(self, key: str) -> float | None:
        item = self._live(key)
        if item is None or item[1] is None:
            return None
        return max(0.0, item[1] - time.monotonic())


class MemoryCache:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def get(self, key: str) -> bytes | None:
        return self._store.get(key)

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        return [self._store.get(k) for k in keys]

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        self._store.set(key, value, ttl_s)

    async def add(self, key: str, value: bytes, ttl_s: float | None = None) -> bool:
        if self._store.get(key) is not None:
            return False
        self._store.set(key, value, ttl_s)
        return True

    async def delete(self, key: str) -> bool:
        return self._store.delete(key)

    async def ttl(self, key: str) -> float | None:
        return self._store.ttl(key)


class MemoryLock(HeldLock):
    def __init__(self, store: MemoryStore, key: str, token: str, ttl_s: float) -> None:
        super().__init__(key, token, ttl_s)
        self._store = store

    def _ours(self) -> bool:
        return self._store.get(self.key) == self.token.encode()

    async def _compare_and_expire(self) -> bool:
        return self._ours() and self._store.expire(self.key, self._ttl_s)

    async def _compare_and_delete(self) -> bool:
        return self._ours() and self._store.delete(self.key)


class MemoryLocks:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def acquire(self, key: str, ttl_s: float, *, wait_s: float = 0.0, watchdog: bool = True) -> MemoryLock | None:
        async def try_set(token: str) -> bool:
            if self._store.get(key) is not None:
                return False
            self._store.set(key, token.encode(), ttl_s)
            return True

        token = await acquire_token(try_set, wait_s)
        if token is None:
            return None
        lock = MemoryLock(self._store, key, token, ttl_s)
        if watchdog:
            lock.watch()
        return lock

    async def holder(self, key: str) -> str | None:
        value = self._store.get(key)
        return value.decode() if value else None


class MemoryRateLimiter:
    """Sliding-window log per key."""

    def __init__(self) -> None:
        self._hits: dict[str, deque[float]] = defaultdict(deque)

    async def hit(self, key: str, limit: int, window_s: float) -> RateDecision:
        now = time.monotonic()
        hits = self._hits[key]
        while hits and hits[0] <= now - window_s:
            hits.popleft()
        if len(hits) >= limit:
            return RateDecision(False, 0, hits[0] + window_s - now if hits else window_s)
        hits.append(now)
        return RateDecision(True, limit - len(hits), 0.0)

    async def reset(self, key: str) -> None:
        self._hits.pop(key, None)


class MemorySubscription:
    def __init__(self, hub: "MemoryPubSub", channel: str) -> None:
        self._hub, self._channel = hub, channel
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            message = await self.queue.get()
            if message is None:
                return
            yield message

    async def close(self) -> None:
        self._hub._subscribers[self._channel].discard(self)
        self.queue.put_nowait(None)


class MemoryPubSub:
    def __init__(self) -> None:
        self._subscribers: dict[str, set[MemorySubscription]] = defaultdict(set)

    async def publish(self, channel: str, message: bytes) -> int:
        subscribers = list(self._subscribers.get(channel, ()))
        for sub in subscribers:
            sub.queue.put_nowait(message)
        return len(subscribers)

    async def subscribe(self, channel: str) -> MemorySubscription:
        sub = MemorySubscription(self, channel)
        self._subscribers[channel].add(sub)
        return sub


class MemoryCacheBackend:
    """The embedded backend: all four capabilities over one in-process store."""

    def __init__(self) -> None:
        store = MemoryStore()
        self.cache = MemoryCache(store)
        self.locks = MemoryLocks(store)
        self.rate_limiter = MemoryRateLimiter()
        self.pubsub = MemoryPubSub()

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None
