"""The interfaces every cache adapter implements (Redis and in-process).

All operations are async; values are bytes (callers serialise). Keys are plain strings;
adapters may prefix them with a namespace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import AsyncIterator, Protocol


class Cache(Protocol):
    async def get(self, key: str) -> bytes | None: ...
    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        """Several values in one round trip, in the order of ``keys``."""
    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None: ...
    async def add(self, key: str, value: bytes, ttl_s: float | None = None) -> bool:
        """Set only if absent; True when this call set it."""
    async def delete(self, key: str) -> bool: ...
    async def ttl(self, key: str) -> float | None:
        """Seconds left, None when the key is absent or has no expiry."""


class LockLost(Exception):
    """The lock's token is no longer the holder's (expired and taken by another)."""


class Lock(Protocol):
    """A held lock. ``lost`` becomes true when the watchdog finds the token gone."""

    key: str
    token: str

    @property
    def lost(self) -> bool: ...
    async def renew(self) -> bool:
        """Extend the TTL if still ours (compare-and-expire); False when lost."""
    async def release(self) -> bool:
        """Compare-and-delete; False when the lock was no longer ours."""


class LockManager(Protocol):
    async def acquire(self, key: str, ttl_s: float, *, wait_s: float = 0.0, watchdog: bool = True) -> Lock | None:
        """``SET key token NX PX ttl``; retry until ``wait_s`` elapses; None when not acquired.

        With ``watchdog`` a background task renews the TTL every ttl/3 while held, and
        stops (marking the lock lost and logging) when the token is no longer ours.
        """

    async def holder(self, key: str) -> str | None:
        """The token currently stored for ``key`` (for diagnostics and tests)."""


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    remaining: int
    retry_after_s: float


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: int, window_s: float) -> RateDecision:
        """Count one event for ``key`` in a sliding window; deny past ``limit``."""

    async def reset(self, key: str) -> None: ...


class Subscription(Protocol):
    def __aiter__(self) -> AsyncIterator[bytes]: ...
    async def close(self) -> None: ...


class PubSub(Protocol):
    async def publish(self, channel: str, message: bytes) -> int:
        """Deliver to current subscribers of ``channel``; returns how many (best effort)."""

    async def subscribe(self, channel: str) -> Subscription:
        """Subscribe; messages published after this call returns are received."""


class CacheBackend(Protocol):
    """Everything one backend gives, built together so they share one connection pool."""

    cache: Cache
    locks: LockManager
    rate_limiter: RateLimiter
    pubsub: PubSub

    async def ping(self) -> bool: ...
    async def close(self) -> None: ...
