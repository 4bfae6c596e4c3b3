"""What every lock adapter shares: the token, the acquire loop, the watchdog, the lost flag.

An adapter says only how to ``SET key token NX PX ttl`` (``try_set``), compare-and-expire
and compare-and-delete on its store.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Awaitable, Callable

log = logging.getLogger("medflow.locks")
RETRY_S = 0.05


def start_watchdog(key: str, ttl_s: float, renew: Callable[[], Awaitable[bool]], on_lost: Callable[[], None]) -> asyncio.Task:
    """Run ``renew`` every third of the TTL; when it reports the token gone, call ``on_lost``."""

    async def loop() -> None:
        interval = max(ttl_s / 3.0, 0.01)
        while True:
            await asyncio.sleep(interval)
            try:
                still_ours = await renew()
            except Exception:  # a transient store error: keep trying until the TTL says otherwise
                log.warning("lock renewal failed; will retry", extra={"lock": key})
                continue
            if not still_ours:
                log.warning("lock lost: token no longer held", extra={"lock": key})
                on_lost()
                return

    return asyncio.create_task(loop(), name=f"lock-watchdog:{key}")


async def acquire_token(try_set: Callable[[str], Awaitable[bool]], wait_s: float) -> str | None:
    """A fresh random token once ``try_set(token)`` succeeds; None when ``wait_s`` runs out."""
    token = secrets.token_hex(16)
    deadline = time.monotonic() + wait_s
    while True:
        if await try_set(token):
            return token
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(min(RETRY_S, max(0.0, deadline - time.monotonic())))


class HeldLock:
    """A lock this process holds. ``lost`` turns true when renewal finds the token gone."""

    def __init__(self, key: str, token: str, ttl_s: float) -> None:
        self.key, self.token, self._ttl_s = key, token, ttl_s
        self._lost = False
        self._watchdog: asyncio.Task | None = None

    @property
    def lost(self) -> bool:
        return self._lost

    def _mark_lost(self) -> None:
        self._lost = True

    async def _compare_and_expire(self) -> bool:
        raise NotImplementedError

    async def _compare_and_delete(self) -> bool:
        raise NotImplementedError

    def watch(self) -> asyncio.Task:
        """Start the watchdog that keeps the lock alive while the holder works."""
        self._watchdog = start_watchdog(self.key, self._ttl_s, self.renew, self._mark_lost)
        return self._watchdog

    async def renew(self) -> bool:
        """Extend the TTL if the token is still ours; False (and lost) otherwise."""
        renewed = await self._compare_and_expire()
        if not renewed:
            self._lost = True
        return renewed

    async def release(self) -> bool:
        """Stop renewing and delete the key if the token is still ours."""
        if self._watchdog:
            self._watchdog.cancel()
        return await self._compare_and_delete()
