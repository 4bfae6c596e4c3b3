"""Pushing a task's progress to the doctor's page: the worker announces each state change on
the task's pub/sub channel (Redis in the cluster, so any replica's stream hears it); a
stream re-reads the task from the database on every announcement and on a heartbeat, so a
lost announcement only delays an update, never loses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any, AsyncIterator, Awaitable, Callable

from medflow.cache.ports import PubSub

log = logging.getLogger("medflow.analysis")
FINISHED = ("succeeded", "failed")


def channel(task_id: str) -> str:
    return f"analysis:{task_id}"


async def announce(pubsub: PubSub, task_id: str, state: str) -> None:
    """Best effort: a stream that misses it finds the state on its next heartbeat."""
    try:
        await pubsub.publish(channel(task_id), json.dumps({"id": task_id, "state": state}).encode())
    except Exception as exc:  # noqa: BLE001 - progress push must never fail the task
        log.warning("progress announcement failed", extra={"error_type": type(exc).__name__})


async def follow(pubsub: PubSub, task_id: str, load: Callable[[], Awaitable[dict[str, Any]]], *,
                 heartbeat_s: float = 5.0, max_s: float = 600.0) -> AsyncIterator[dict[str, Any] | None]:
    """The task now, then each time it changes, until it finishes (or ``max_s``: reconnect);
    ``None`` after a heartbeat without change (the stream sends a keep-alive)."""
    subscription = await pubsub.subscribe(channel(task_id))
    wake = asyncio.Event()

    async def pump() -> None:
        with contextlib.suppress(Exception):
            async for _ in subscription:
                wake.set()

    reader = asyncio.create_task(pump(), name=f"analysis-follow:{task_id}")
    loop = asyncio.get_running_loop()
    ends = loop.time() + max_s
    try:
        last = None
        while True:
            task = await load()
            marker = (task["state"], task["attempts"], task["updated_at"])
            if marker != last:
                last = marker
                yield task
            else:
                yield None
            if task["state"] in FINISHED or loop.time() >= ends:
                return
            wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(wake.wait(), min(heartbeat_s, max(0.0, ends - loop.time())))
    finally:
        await subscription.close()
        reader.cancel()
