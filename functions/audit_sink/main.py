"""audit_sink: writes one audit row per ``org.medflow.audit.*`` CloudEvent (CloudEvent).

Idempotent by event id: a redelivered event adds no row. Use case: ``medflow.audit.trail``.
"""

from __future__ import annotations

from medflow.audit.trail import AuditEntry, record
from medflow.runtime.entry import entrypoint
from medflow.runtime.spec import EventCall, EventFunction

spec = EventFunction("audit_sink", "Audit trail writer", accepts=("org.medflow.audit.*",))


@spec.on_event
async def on_audit_event(call: EventCall) -> None:
    entry = AuditEntry.from_event_data(call.event.data)
    await record(call.services.db, entry, event_id=call.event["id"], source=call.event["source"],
                 trace_id=call.trace.trace_id)


audit_sink = entrypoint(spec)
