"""The transactional outbox: events written in the same transaction as the change they
announce, so a committed change always gets its event and a rolled-back one never does.

``stage`` adds the event to the caller's transaction; after the commit ``publish_staged``
hands those events to the bus and removes their rows. A publish lost to a crash or a broker
outage is retried by ``sweep`` (rows older than a grace period), so delivery is at least
once; consumers are idempotent (ARCHITECTURE §4).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any, Iterable

import sqlalchemy as sa
from cloudevents.http import CloudEvent

from medflow.bus.ports import EventBus
from medflow.db.engine import Database
from medflow.db.schema import event_outbox
from medflow.ids import new_id, utcnow

log = logging.getLogger("medflow.bus.outbox")
GRACE_S = 30.0          # a row younger than this may still be published by its own request


def _to_row(event: CloudEvent) -> dict[str, Any]:
    return {"id": new_id(), "event_id": event["id"], "event_type": event["type"],
            "event": {"attributes": dict(event.get_attributes()), "data": event.data}, "created_at": utcnow()}


def _from_row(stored: dict[str, Any]) -> CloudEvent:
    return CloudEvent(dict(stored["attributes"]), stored["data"])


async def stage(conn, events: Iterable[CloudEvent]) -> list[str]:
    """Insert the events into the outbox inside the caller's transaction; their ids."""
    rows = [_to_row(e) for e in events]
    if rows:
        await conn.execute(event_outbox.insert(), rows)
    return [r["event_id"] for r in rows]


async def publish_staged(db: Database, bus: EventBus, events: Iterable[CloudEvent]) -> bool:
    """After the commit: publish and remove. False when the bus failed (the sweep will retry)."""
    events = list(events)
    try:
        await asyncio.gather(*(bus.publish(event) for event in events))   # acknowledged together, not one by one
    except Exception as exc:
        log.warning("outbox publish failed; left for the sweep", extra={"error_type": type(exc).__name__})
        return False
    async with db.transaction() as conn:
        await conn.execute(event_outbox.delete().where(event_outbox.c.event_id.in_([e["id"] for e in events])))
    return True


async def sweep(db: Database, bus: EventBus, *, older_than_s: float = GRACE_S, limit: int = 100) -> int:
    """Publish events left behind by a failed or interrupted ``publish_staged``; how many
    (0 when the bus failed: they stay for the next sweep)."""
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    async with db.connect() as conn:
        rows = (await conn.execute(sa.select(event_outbox.c.event_id, event_outbox.c.event)
                                   .where(event_outbox.c.created_at < cutoff)
                                   .order_by(event_outbox.c.created_at).limit(limit))).all()
    if not rows:
        return 0
    published = await publish_staged(db, bus, [_from_row(r.event) for r in rows])
    return len(rows) if published else 0


async def pending(db: Database) -> int:
    async with db.connect() as conn:
        return (await conn.execute(sa.select(sa.func.count()).select_from(event_outbox))).scalar_one()


async def sweep_all(db: Database, bus: EventBus, *, older_than_s: float = GRACE_S, limit: int = 100) -> int:
    """``sweep`` until nothing old is left (or a publish fails); how many were published."""
    total = 0
    while (published := await sweep(db, bus, older_than_s=older_than_s, limit=limit)):
        total += published
        if published < limit:
            break
    return total


async def sweep_every(db: Database, bus: EventBus, interval_s: float) -> None:
    """The embedded run's schedule: a ``sweep_all`` every ``interval_s`` until cancelled (a
    failed pass is logged and the next one tries again)."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await sweep_all(db, bus)
        except Exception as exc:  # noqa: BLE001 - the loop outlives a database or broker hiccup
            log.warning("outbox sweep failed", extra={"error_type": type(exc).__name__})
