"""The reaper: no task stays ``running`` or ``queued`` forever.

Run every minute (a Kubernetes CronJob running ``medflow analysis reap`` in the cluster;
a background loop of ``medflow serve`` embedded). It finds

- ``running`` tasks whose lease ran out (the worker died or hung): queued again and their
  event published again, or failed ``too-many-attempts`` when their deliveries are spent;
- ``queued`` tasks with no progress for ``analysis_stale_s`` (their event was lost or
  dead-lettered): event published again, up to ``analysis_max_requeues`` times, then
  failed ``stuck``.

Every change is conditional on what the reaper read, so a worker finishing meanwhile wins.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa

from medflow.analysis import progress
from medflow.analysis.tasks import requested_event
from medflow.analysis.worker import fail
from medflow.bus.outbox import publish_staged, stage
from medflow.db.schema import analysis_tasks
from medflow.ids import utcnow

if TYPE_CHECKING:
    from medflow.bootstrap import Services

log = logging.getLogger("medflow.analysis")
SOURCE = "/medflow/analysis_reaper"
BATCH = 200


@dataclass(frozen=True)
class Reaped:
    requeued: int = 0
    failed: int = 0


async def _stuck(services: "Services") -> list[dict]:
    now, t = utcnow(), analysis_tasks
    stale = now - timedelta(seconds=services.settings.analysis_stale_s)
    async with services.db.connect() as conn:
        rows = (await conn.execute(sa.select(t).where(sa.or_(
            sa.and_(t.c.state == "running", t.c.lease_until < now),
            sa.and_(t.c.state == "queued", t.c.updated_at < stale))).order_by(t.c.updated_at).limit(BATCH))).mappings()
        return [dict(r) for r in rows]


async def _requeue(services: "Services", task: dict) -> bool:
    now = utcnow()
    requeued = {**task, "state": "queued", "requeues": task["requeues"] + 1}
    event = requested_event(requeued, SOURCE)
    async with services.db.transaction() as conn:
        changed = await conn.execute(analysis_tasks.update().where(
            analysis_tasks.c.id == task["id"], analysis_tasks.c.state == task["state"],
            analysis_tasks.c.attempts == task["attempts"], analysis_tasks.c.updated_at == task["updated_at"]).values(
            state="queued", requeues=task["requeues"] + 1, lease_until=None, updated_at=now,
            error_code="requeued", error="the task made no progress and was queued again"))
        if changed.rowcount != 1:
            return False
        await stage(conn, [event])
    await publish_staged(services.db, services.bus, [event])
    await progress.announce(services.cache.pubsub, task["id"], "queued")
    return True


async def reap(services: "Services") -> Reaped:
    """One pass over the stuck tasks; what it did."""
    s = services.settings
    requeued = failed = 0
    for task in await _stuck(services):
        if task["state"] == "running" and task["attempts"] >= s.analysis_max_attempts:
            failed += await fail(services, task, task["attempts"], "too-many-attempts",
                                 f"the task was started {task['attempts']} times without finishing", SOURCE)
        elif task["requeues"] >= s.analysis_max_requeues:
            failed += await fail(services, task, task["attempts"], "stuck",
                                 f"the task made no progress after being queued {task['requeues'] + 1} times", SOURCE)
        else:
            requeued += await _requeue(services, task)
    if requeued or failed:
        log.info("analysis reaper", extra={"requeued": requeued, "failed": failed})
    return Reaped(requeued, failed)


async def reap_every(services: "Services", interval_s: float) -> None:
    """The embedded run's schedule: one pass every ``interval_s`` until cancelled (a failed
    pass is logged and the next one tries again)."""
    import asyncio
    while True:
        await asyncio.sleep(interval_s)
        try:
            await reap(services)
        except Exception as exc:  # noqa: BLE001 - the loop outlives a database hiccup
            log.warning("analysis reaper pass failed", extra={"error_type": type(exc).__name__})
