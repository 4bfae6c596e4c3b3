"""Revoking access tokens before they expire, through the shared cache.

Two markers, each kept only as long as an access token can live:
- a token id on the deny list (logout);
- a user's "revoked before" instant (disabled, deleted, password changed or reset):
  every token of that user issued earlier is refused.

Checking both markers costs one cache round trip. A process remembers, for
``recheck_s`` seconds (1 s by default, ``MEDFLOW_REVOCATION_RECHECK_S``), that a token
was found not revoked, so a client sending many requests costs one round trip per
second, not one per request. A revocation is therefore seen at once by the process that
made it (it forgets what it remembered) and by every other process within ``recheck_s``;
``recheck_s=0`` asks the cache on every request. The look-ups of requests checked at the
same moment (one turn of the event loop) share one round trip (one MGET).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict

from medflow.cache.ports import Cache


def _deny_key(jti: str) -> str:
    return f"auth:deny:{jti}"


def _user_key(user_id: str) -> str:
    return f"auth:revoked-before:{user_id}"


class Revocations:
    """The deny list and revoked-before markers, with a short per-process memo of clean tokens."""

    MEMO_SIZE = 50_000

    def __init__(self, cache: Cache, recheck_s: float = 1.0, clock=time.monotonic) -> None:
        self._cache, self._recheck_s, self._clock = cache, recheck_s, clock
        self._clean: OrderedDict[str, float] = OrderedDict()  # token id -> when it was last found not revoked
        self._pending: list[tuple[str, str, asyncio.Future]] = []  # look-ups waiting for the next MGET

    async def deny(self, jti: str, expires_at: float) -> None:
        """This one access token stops working (logout)."""
        ttl = max(1.0, expires_at - time.time() + 10)
        await self._cache.set(_deny_key(jti), b"1", ttl)
        self._clean.clear()

    async def revoke_user(self, user_id: str, access_ttl_s: int, at: float | None = None) -> None:
        """Every access token of the user issued before now stops working."""
        instant = time.time() if at is None else at
        await self._cache.set(_user_key(user_id), f"{instant:.3f}".encode(), access_ttl_s + 60)
        self._clean.clear()

    async def is_revoked(self, jti: str, user_id: str, issued_at: float) -> bool:
        """Both markers in one round trip, unless this token was found clean less than recheck_s ago."""
        now = self._clock()
        checked = self._clean.get(jti)
        if checked is not None and now - checked < self._recheck_s:
            return False
        denied, before = await self._lookup(jti, user_id)
        revoked = denied is not None or (before is not None and issued_at < float(before))
        if revoked:
            self._clean.pop(jti, None)
        elif self._recheck_s > 0:
            self._clean[jti] = now
            self._clean.move_to_end(jti)
            if len(self._clean) > self.MEMO_SIZE:
                self._clean.popitem(last=False)
        return revoked

    async def _lookup(self, jti: str, user_id: str) -> tuple[bytes | None, bytes | None]:
        """Both markers of one token; concurrent look-ups are sent together."""
        future = asyncio.get_running_loop().create_future()
        self._pending.append((jti, user_id, future))
        if len(self._pending) == 1:
            asyncio.get_running_loop().create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        keys = [key for jti, user_id, _ in batch for key in (_deny_key(jti), _user_key(user_id))]
        try:
            values = await self._cache.get_many(keys)
        except Exception as exc:  # every waiting request sees the cache failure (a 503 upstream)
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for i, (*_, future) in enumerate(batch):
            if not future.done():
                future.set_result((values[2 * i], values[2 * i + 1]))
