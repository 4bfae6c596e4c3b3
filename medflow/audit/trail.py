"""Emitting audit events and recording them, once per event id.

Producers publish ``org.medflow.audit.recorded.v1``; the ``audit_sink`` function writes
the row. The table is append-only: this module offers insert and read, nothing else.

An action has happened (and committed) by the time it is audited, so an event the broker
does not take is not an error for the user: it is kept in the transactional outbox and the
outbox sweep (``medflow outbox sweep``, every minute) publishes it when the broker is back.
After one refused publish the next events go to the outbox at once for a while (a circuit
breaker), so only the first request of an outage waits for the producer's time-out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from medflow.bus.catalogue import Catalogue
from medflow.bus import outbox
from medflow.bus.events import make_event
from medflow.bus.ports import EventBus
from medflow.db.engine import Database, is_unique_violation
from medflow.db.schema import audit_log
from medflow.ids import new_id, utcnow
from medflow.resilience import BreakerConfig, CircuitBreaker

if TYPE_CHECKING:
    from medflow.bootstrap import Services

AUDIT_RECORDED = "org.medflow.audit.recorded.v1"
log = logging.getLogger("medflow.audit")
# One refused publish (a broker outage costs the producer's whole delivery timeout) sends
# the next audit events straight to the outbox for 15 s; then one call tries the bus again.
PUBLISH_BREAKER = CircuitBreaker("audit-publish", BreakerConfig(window=1, min_calls=1, failure_ratio=1.0,
                                                                slow_call_s=60.0, open_s=15.0, half_open_calls=1))


@dataclass(frozen=True)
class AuditEntry:
    action: str
    resource_type: str
    outcome: str
    occurred_at: datetime
    resource_id: str | None = None
    institution_id: str | None = None
    actor_id: str | None = None
    actor_role: str | None = None
    details: dict[str, Any] | None = field(default=None)

    def to_event_data(self) -> dict[str, Any]:
        return {"occurred_at": self.occurred_at.isoformat(), "action": self.action, "resource_type": self.resource_type,
                "outcome": self.outcome, "resource_id": self.resource_id, "institution_id": self.institution_id,
                "actor_id": self.actor_id, "actor_role": self.actor_role, "details": self.details}

    @staticmethod
    def from_event_data(data: dict[str, Any]) -> "AuditEntry":
        return AuditEntry(action=data["action"], resource_type=data["resource_type"], outcome=data["outcome"],
                          occurred_at=datetime.fromisoformat(data["occurred_at"].replace("Z", "+00:00")),
                          resource_id=data.get("resource_id"), institution_id=data.get("institution_id"),
                          actor_id=data.get("actor_id"), actor_role=data.get("actor_role"), details=data.get("details"))


async def emit(bus: EventBus, catalogue: Catalogue, entry: AuditEntry, source: str, *, db: Database | None = None) -> str:
    """Validate and publish an audit event; returns its event id. With ``db``, an event the
    bus refuses is staged in the outbox for the sweep instead of failing the caller."""
    data = entry.to_event_data()
    catalogue.validate(AUDIT_RECORDED, data)
    event = make_event(AUDIT_RECORDED, source, entry.resource_id or entry.actor_id or "-", data)
    try:
        await PUBLISH_BREAKER.call(lambda: bus.publish(event))
    except Exception as exc:
        if db is None:
            raise
        async with db.transaction() as conn:
            await outbox.stage(conn, [event])
        log.warning("audit event left in the outbox for the sweep",
                    extra={"action": entry.action, "error_type": type(exc).__name__})
    return event["id"]


async def record(db: Database, entry: AuditEntry, *, event_id: str, source: str, trace_id: str | None) -> bool:
    """Insert the row for ``event_id``; False (and no change) when it was already recorded."""
    row = {"id": new_id(), "event_id": event_id, "occurred_at": entry.occurred_at, "recorded_at": utcnow(),
           "institution_id": entry.institution_id, "actor_id": entry.actor_id, "actor_role": entry.actor_role,
           "action": entry.action, "resource_type": entry.resource_type, "resource_id": entry.resource_id,
           "outcome": entry.outcome, "source": source, "trace_id": trace_id, "details": entry.details}
    try:
        async with db.transaction() as conn:
            await conn.execute(audit_log.insert().values(**row))
        return True
    except sa.exc.IntegrityError as exc:
        if is_unique_violation(exc):
            return False
        raise


async def count_for_event(db: Database, event_id: str) -> int:
    async with db.connect() as conn:
        return (await conn.execute(sa.select(sa.func.count()).select_from(audit_log)
                                   .where(audit_log.c.event_id == event_id))).scalar_one()


async def audit(services: "Services", *, source: str, action: str, resource_type: str, outcome: str,
                actor_id: str | None = None, actor_role: str | None = None, institution_id: str | None = None,
                resource_id: str | None = None, details: dict[str, Any] | None = None) -> str:
    """Record an action in the audit trail: through the bus now, or through the outbox when
    the bus is down."""
    entry = AuditEntry(action=action, resource_type=resource_type, outcome=outcome, occurred_at=utcnow(),
                       resource_id=resource_id, institution_id=institution_id, actor_id=actor_id,
                       actor_role=actor_role, details=details)
    return await emit(services.bus, services.catalogue, entry, source, db=services.db)
