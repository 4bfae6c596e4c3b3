"""Lock renewal shared by every lock adapter: renew every ttl/3 until released or lost."""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

log = logging.getLogger("medflow.locks")


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
