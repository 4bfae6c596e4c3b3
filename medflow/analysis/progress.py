"""Pushing a task's progress to the doctor's page.

The worker announces each state change on one pub/sub channel (Redis in the cluster, so
every replica hears it), naming the task. Each process holds a single subscription to it
(``ProgressHub``) and wakes the streams following that task: fifty doctors watching their
tasks cost one Redis connection, not fifty. A stream re-reads the task from the database
on every wake-up and on a heartbeat, so a lost announcement only delays an update.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from typing import Any, AsyncIterator, Awaitable, Callable

from medflow.cache.ports import PubSub, Subscription

log = logging.getLogger("medflow.analysis")
FINISHED = ("succeeded", "failed")
CHANNEL = "analysis:progress"


async def announce(pubsub: PubSub, task_id: str, state: str) -> None:
    """Best effort: a stream that misses it finds the state on its next heartbeat."""
    try:
        await pubsub.publish(CHANNEL, json.dumps({"id": task_id, "state": state}).encode())
    except Exception as exc:  # noqa: BLE001 - progress push must never fail the task
        log.warning("progress announcement failed", extra={"error_type": type(exc).__name__})


class ProgressHub:
    """One subscription per process, fanned out to the local followers of each task."""

    def __init__(self, pubsub: PubSub) -> None:
        self._pubsub = pubsub
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._subscription: Subscription | None = None
        self._reader: asyncio.Task | None = None
        self._lock = asyncio.Lock()

    async def _ensure(self) -> None:
        async with self._lock:
            if self._reader is None or self._reader.done():
                self._subscription = await self._pubsub.subscribe(CHANNEL)
                self._reader = asyncio.create_task(self._read(self._subscription), name="analysis-progress-hub")

    async def _read(self, subscription: Subscription) -> None:
        try:
            async for message in subscription:
                try:
                    task_id = json.loads(message)["id"]
                except (ValueError, KeyError, TypeError):
                    continue
                for event in self._waiters.get(task_id, ()):
                    event.set()
        except Exception as exc:  # noqa: BLE001 - the next follower subscribes again; heartbeats cover the gap
            log.warning("progress subscription lost", extra={"error_type": type(exc).__name__})

    @contextlib.asynccontextmanager
    async def watching(self, task_id: str):
        """An event set whenever the task is announced, while the block runs."""
        await self._ensure()
        event = asyncio.Event()
        self._waiters[task_id].add(event)
        try:
            yield event
        finally:
            self._waiters[task_id].discard(event)
            if not self._waiters[task_id]:
                del self._waiters[task_id]

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.wait({self._reader})   # its own cancellation is not raised here; ours would be
        if self._subscription is not None:
            await self._subscription.close()


async def follow(hub: ProgressHub, task_id: str, load: Callable[[], Awaitable[dict[str, Any]]], *,
                 heartbeat_s: float = 5.0, max_s: float = 600.0) -> AsyncIterator[dict[str, Any] | None]:
    """The task now, then each time it changes, until it finishes (or ``max_s``: reconnect);
    ``None`` after a heartbeat without change (the stream sends a keep-alive)."""
    loop = asyncio.get_running_loop()
    ends = loop.time() + max_s
    async with hub.watching(task_id) as wake:
        last = None
        while True:
            wake.clear()                 # before reading: an announcement from now on wakes us again
            task = await load()
            marker = (task["state"], task["attempts"], task["updated_at"])
            if marker != last:
                last = marker
                yield task
            else:
                yield None
            if task["state"] in FINISHED or loop.time() >= ends:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(heartbeat_s, max(0.0, ends - loop.time()))):
                    await wake.wait()
