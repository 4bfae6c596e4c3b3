"""analysis_worker: runs analysis tasks, one ``org.medflow.analysis.requested.v1`` CloudEvent
at a time (CloudEvent; Kafka through Knative or the relay, or the in-process bus).

Takes the lock of the task's input, calls the KServe model (time-outs, retries with
backoff, a circuit breaker per model), stores the checked result and announces the
outcome (``org.medflow.analysis.finished.v1`` through the outbox, and the task's pub/sub
channel for the doctor's page). A model that is down answers 503 (the bus delivers again
with backoff) until the task's attempts are spent. Idempotent: a duplicate delivery never
calls the model twice. Use case: ``medflow.analysis.worker``.
"""

from __future__ import annotations

from medflow.analysis.worker import run_task
from medflow.runtime.entry import entrypoint
from medflow.runtime.spec import EventCall, EventFunction

spec = EventFunction("analysis_worker", "Analysis worker", accepts=("org.medflow.analysis.requested.v1",))


@spec.on_event
async def on_analysis_requested(call: EventCall) -> None:
    data = call.event.data
    await run_task(call.services, data["task_id"], data["institution_id"])


analysis_worker = entrypoint(spec)
