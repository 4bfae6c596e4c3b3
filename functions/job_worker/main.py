"""job_worker: runs bulk jobs in checkpointed batches, one ``org.medflow.jobs.requested.v1``
CloudEvent at a time (CloudEvent; Kafka through Knative or the relay, or the in-process bus).

Idempotent: a duplicate or redelivered event finds the job finished or resumes it at its
checkpoint. Use case: ``medflow.jobs.worker``.
"""

from __future__ import annotations

from medflow.jobs.worker import run_job
from medflow.runtime.entry import entrypoint
from medflow.runtime.spec import EventCall, EventFunction

spec = EventFunction("job_worker", "Bulk job worker", accepts=("org.medflow.jobs.requested.v1",))


@spec.on_event
async def on_job_requested(call: EventCall) -> None:
    data = call.event.data
    await run_job(call.services, data["job_id"], data["institution_id"], data.get("continuation", 0))


job_worker = entrypoint(spec)
