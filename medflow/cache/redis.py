"""Redis cache backend for the cluster: same contract as ``memory.py``, shared across processes.

One ``BlockingConnectionPool`` serves the cache, locks and rate limiter; each pub/sub
subscription holds one pooled connection of its own while open. Every key and channel is
prefixed with ``"{namespace}:"``. Connection failures surface as ``TransientError`` so
callers can retry. Nothing here logs values or the URL (it carries the password).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import time
from typing import AsyncIterator, Iterator

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import PubSub as RedisPubSubClient
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from medflow.cache.ports import RateDecision
from medflow.cache.locking import HeldLock, acquire_token
from medflow.errors import TransientError

POOL_TIMEOUT_S = 5.0  # how long a caller waits for a free pooled connection
SOCKET_TIMEOUT_S = 5.0  # how long one command may take before it counts as a failure
SUBSCRIBE_CONFIRM_S = 5.0
READ_POLL_S = 1.0  # an idle subscription re-checks its state this often

# Compare-and-delete: only the holder's token may release the lock.
RELEASE_LUA = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
else
  return 0
end
"""

# Compare-and-expire: only the holder's token may extend the lock.
RENEW_LUA = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
else
  return 0
end
"""

# Sliding-window log on a sorted set, atomic, timed by the server's clock so that clients
# with skewed clocks agree. ARGV: limit, window (ms), a random suffix for a unique member.
# Returns {allowed, remaining, retry_after_ms as a string (Lua numbers become integers)}.
RATE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now, string.format('%.3f', now) .. '-' .. ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window))
  return {1, limit - count - 1, '0'}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if oldest[2] == nil then
  return {0, 0, tostring(window)}
end
return {0, 0, tostring(tonumber(oldest[2]) + window - now)}
"""


@contextlib.contextmanager
def transient_errors() -> Iterator[None]:
    """Turn Redis connection and time-out failures into ``TransientError``."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise TransientError("Redis is unavailable") from exc


def _px(ttl_s: float) -> int:
    """A TTL in whole milliseconds, at least 1 (Redis rejects PX 0)."""
    return max(1, round(ttl_s * 1000))


class _Keys:
    """Namespacing: cache and locks share one keyspace (as in memory); rate limits have their own."""

    def __init__(self, namespace: str) -> None:
        self._prefix = f"{namespace}:"

    def key(self, key: str) -> str:
        return self._prefix + key

    def rate(self, key: str) -> str:
        return f"{self._prefix}rate-limit:{key}"

    def channel(self, channel: str) -> str:
        return self._prefix + channel


class RedisCache:
    def __init__(self, client: Redis, keys: _Keys) -> None:
        self._client, self._keys = client, keys

    async def get(self, key: str) -> bytes | None:
        with transient_errors():
            return await self._client.get(self._keys.key(key))

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        with transient_errors():
            return await self._client.mget([self._keys.key(k) for k in keys])

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        with transient_errors():
            await self._client.set(self._keys.key(key), value, px=_px(ttl_s) if ttl_s else None)

    async def add(self, key: str, value: bytes, ttl_s: float | None = None) -> bool:
        with transient_errors():
            return bool(await self._client.set(self._keys.key(key), value, px=_px(ttl_s) if ttl_s else None, nx=True))

    async def delete(self, key: str) -> bool:
        with transient_errors():
            return bool(await self._client.delete(self._keys.key(key)))

    async def ttl(self, key: str) -> float | None:
        with transient_errors():
            millis = await self._client.pttl(self._keys.key(key))
        return None if millis < 0 else millis / 1000.0  # -2: absent, -1: no expiry


class RedisLock(HeldLock):
    def __init__(self, locks: "RedisLocks", key: str, token: str, ttl_s: float) -> None:
        super().__init__(key, token, ttl_s)
        self._locks = locks

    async def _compare_and_expire(self) -> bool:
        with transient_errors():
            return bool(await self._locks.renew_script(keys=[self._locks.keys.key(self.key)],
                                                       args=[self.token, _px(self._ttl_s)]))

    async def _compare_and_delete(self) -> bool:
        with transient_errors():
            return bool(await self._locks.release_script(keys=[self._locks.keys.key(self.key)], args=[self.token]))


class RedisLocks:
    """``SET NX PX`` locks with a random token; release and renew compare the token atomically."""

    def __init__(self, client: Redis, keys: _Keys) -> None:
        self._client, self.keys = client, keys
        self.release_script = client.register_script(RELEASE_LUA)
        self.renew_script = client.register_script(RENEW_LUA)
        self._watchdogs: set[asyncio.Task] = set()

    async def acquire(self, key: str, ttl_s: float, *, wait_s: float = 0.0, watchdog: bool = True) -> RedisLock | None:
        async def try_set(token: str) -> bool:
            with transient_errors():
                return bool(await self._client.set(self.keys.key(key), token, px=_px(ttl_s), nx=True))

        token = await acquire_token(try_set, wait_s)
        if token is None:
            return None
        lock = RedisLock(self, key, token, ttl_s)
        if watchdog:
            task = lock.watch()
            self._watchdogs.add(task)
            task.add_done_callback(self._watchdogs.discard)
        return lock

    async def holder(self, key: str) -> str | None:
        with transient_errors():
            value = await self._client.get(self.keys.key(key))
        return value.decode() if value else None

    def stop_watchdogs(self) -> None:
        """Stop renewing every lock still held (the backend is closing; their TTLs run out)."""
        for task in list(self._watchdogs):
            task.cancel()


class RedisRateLimiter:
    """Sliding-window log per key in a sorted set, one atomic script per hit."""

    def __init__(self, client: Redis, keys: _Keys) -> None:
        self._client, self._keys = client, keys
        self._script = client.register_script(RATE_LUA)

    async def hit(self, key: str, limit: int, window_s: float) -> RateDecision:
        with transient_errors():
            allowed, remaining, retry_ms = await self._script(
                keys=[self._keys.rate(key)], args=[limit, repr(window_s * 1000.0), secrets.token_hex(8)]
            )
        return RateDecision(bool(allowed), int(remaining), max(0.0, float(retry_ms) / 1000.0))

    async def reset(self, key: str) -> None:
        with transient_errors():
            await self._client.delete(self._keys.rate(key))


class RedisSubscription:
    """One channel on a dedicated connection; a reader task feeds a queue the iterator drains."""

    def __init__(self, pubsub: RedisPubSubClient, hub: "RedisPubSub") -> None:
        self._pubsub, self._hub = pubsub, hub
        self._queue: asyncio.Queue[bytes | Exception | None] = asyncio.Queue()
        self._closed = False
        self._reader = asyncio.create_task(self._read(), name="redis-subscription")

    async def _read(self) -> None:
        """Queue messages until the server confirms the unsubscribe sent by ``close``."""
        try:
            while self._pubsub.subscribed:
                message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=READ_POLL_S)
                if message and message["type"] == "message":
                    self._queue.put_nowait(message["data"])
        except (RedisConnectionError, RedisTimeoutError) as exc:
            error = TransientError("Redis subscription lost")
            error.__cause__ = exc
            self._queue.put_nowait(error)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            if isinstance(item, Exception):
                raise item
            yield item

    async def close(self) -> None:
        """Unsubscribe and wait for the server to confirm, so later publishes no longer count us."""
        if self._closed:
            return
        self._closed = True
        self._hub._open.discard(self)
        if not self._reader.done():
            with contextlib.suppress(RedisConnectionError, RedisTimeoutError, OSError):
                await self._pubsub.unsubscribe()
            await asyncio.wait([self._reader], timeout=SUBSCRIBE_CONFIRM_S)
        self._reader.cancel()
        await asyncio.wait([self._reader])
        with contextlib.suppress(RedisConnectionError, RedisTimeoutError, OSError):
            await self._pubsub.aclose()
        self._queue.put_nowait(None)


class RedisPubSub:
    def __init__(self, client: Redis, keys: _Keys) -> None:
        self._client, self._keys = client, keys
        self._open: set[RedisSubscription] = set()

    async def publish(self, channel: str, message: bytes) -> int:
        with transient_errors():
            return int(await self._client.publish(self._keys.channel(channel), message))

    async def subscribe(self, channel: str) -> RedisSubscription:
        pubsub = self._client.pubsub()
        try:
            with transient_errors():
                await pubsub.subscribe(self._keys.channel(channel))
                await self._confirmed(pubsub)
        except BaseException:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            raise
        subscription = RedisSubscription(pubsub, self)
        self._open.add(subscription)
        return subscription

    @staticmethod
    async def _confirmed(pubsub: RedisPubSubClient) -> None:
        """Wait for the server's subscribe reply: from then on every publish reaches us."""
        deadline = time.monotonic() + SUBSCRIBE_CONFIRM_S
        while (left := deadline - time.monotonic()) > 0:
            reply = await pubsub.get_message(timeout=left)
            if reply and reply["type"] == "subscribe":
                return
        raise TransientError("Redis did not confirm the subscription")

    async def close_all(self) -> None:
        for subscription in list(self._open):
            await subscription.close()


class RedisCacheBackend:
    """The cluster backend: cache, locks, rate limiter and pub/sub over one connection pool."""

    def __init__(self, url: str, namespace: str = "medflow", max_connections: int = 50) -> None:
        self._pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=POOL_TIMEOUT_S,
            socket_connect_timeout=SOCKET_TIMEOUT_S,
            socket_timeout=SOCKET_TIMEOUT_S,
        )
        self._client = Redis(connection_pool=self._pool)
        keys = _Keys(namespace)
        self.cache = RedisCache(self._client, keys)
        self.locks = RedisLocks(self._client, keys)
        self.rate_limiter = RedisRateLimiter(self._client, keys)
        self.pubsub = RedisPubSub(self._client, keys)

    def __repr__(self) -> str:  # never show the URL: it holds the password
        return f"<RedisCacheBackend pool={self._pool.max_connections}>"

    async def ping(self) -> bool:
        """True when Redis answers; False when it cannot be reached (for health checks)."""
        try:
            return bool(await self._client.ping())
        except (RedisConnectionError, RedisTimeoutError):
            return False

    async def close(self) -> None:
        self.locks.stop_watchdogs()
        await self.pubsub.close_all()
        await self._client.aclose()
        await self._pool.disconnect()
