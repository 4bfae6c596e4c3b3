"""Running an analysis task, one ``org.medflow.analysis.requested.v1`` event at a time.

Never twice on the model
    The worker takes a lock per input (``SET NX PX`` with a random token, renewed by a
    watchdog while the model works, released by compare-and-delete), then claims the task
    with a conditional update on its attempt counter. A duplicate delivery finds the task
    finished, or running under someone else's lock, and does nothing; only the claim's
    holder can write the result (the write is conditional on the attempt it claimed).

Failures
    A transient failure (model down, slow, overloaded, circuit open) puts the task back in
    the queue and answers 503, so the bus redelivers with backoff; after
    ``analysis_max_attempts`` deliveries the task fails with ``model-unavailable``. The
    model refusing the input, an output that fails its schema, or an input deleted since
    submission fail the task at once with that reason. A worker that dies mid-task leaves
    a ``running`` task whose lease runs out: the reaper (``reaper.py``) queues it again.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from medflow.analysis import progress
from medflow.analysis.client import ModelRejectedInput
from medflow.analysis.inputs import InputGone, load_request
from medflow.analysis.models import MODELS
from medflow.analysis.results import InvalidModelOutput, model_timings, structured_result
from medflow.analysis.tasks import ANALYSIS_FINISHED, FINISHED, load
from medflow.bus.events import make_event
from medflow.bus.outbox import publish_staged, stage
from medflow.db.schema import analysis_tasks
from medflow.errors import PermanentError, TransientError
from medflow.ids import utcnow
from medflow.runtime import metrics

if TYPE_CHECKING:
    from medflow.bootstrap import Services

log = logging.getLogger("medflow.analysis")
SOURCE = "/medflow/analysis_worker"


def lock_key(task: dict[str, Any]) -> str:
    return f"analysis:input:{task['institution_id']}:{task['model']}:{task['model_version']}:{task['input_digest']}"


BACKOFF_MAX_S = 5.0     # call_remote's longest wait between tries


def lease_s(settings) -> float:
    """How long a claim holds: every try of the model call, the waits between them, and the
    lock's TTL as a margin. Past it the reaper takes the task for abandoned."""
    attempts = settings.analysis_model_attempts
    return settings.analysis_model_timeout_s * attempts + BACKOFF_MAX_S * (attempts - 1) + settings.analysis_lock_ttl_s


def finished_event(task: dict[str, Any], source: str = SOURCE):
    return make_event(ANALYSIS_FINISHED, source, task["id"], {
        "task_id": task["id"], "institution_id": task["institution_id"], "case_id": task["case_id"],
        "model": task["model"], "model_version": task["model_version"], "state": task["state"],
        "error_code": task.get("error_code")})


async def finish(services: "Services", task: dict[str, Any], attempt: int, values: dict[str, Any],
                 source: str = SOURCE) -> bool:
    """Write the outcome (if this attempt still holds the claim) and announce it; True when written."""
    now = utcnow()
    values = {**values, "updated_at": now, "finished_at": now, "lease_until": None}
    done = {**task, **values}
    event = finished_event(done, source)
    async with services.db.transaction() as conn:
        changed = await conn.execute(analysis_tasks.update().where(
            analysis_tasks.c.id == task["id"], analysis_tasks.c.attempts == attempt,
            analysis_tasks.c.state.in_(("queued", "running"))).values(**values))
        if changed.rowcount != 1:
            return False
        await stage(conn, [event])
    await publish_staged(services.db, services.bus, [event])
    await progress.announce(services.cache.pubsub, task["id"], values["state"])
    metrics.ANALYSIS_TASKS.labels(task["model"], values["state"]).inc()
    return True


async def fail(services: "Services", task: dict[str, Any], attempt: int, code: str, reason: str,
               source: str = SOURCE) -> bool:
    log.info("analysis failed", extra={"task_id": task["id"], "model": task["model"], "error_code": code})
    return await finish(services, task, attempt, {"state": "failed", "error_code": code, "error": reason[:500]}, source)


async def _claim(services: "Services", task: dict[str, Any]) -> int | None:
    """Mark the task running under the next attempt number; None when another claim won."""
    now, attempt = utcnow(), task["attempts"] + 1
    async with services.db.transaction() as conn:
        changed = await conn.execute(analysis_tasks.update().where(
            analysis_tasks.c.id == task["id"], analysis_tasks.c.attempts == task["attempts"],
            analysis_tasks.c.state.in_(("queued", "running"))).values(
            state="running", attempts=attempt, started_at=task["started_at"] or now,
            lease_until=now + timedelta(seconds=lease_s(services.settings)), updated_at=now))
    if changed.rowcount != 1:
        return None
    await progress.announce(services.cache.pubsub, task["id"], "running")
    return attempt


async def _requeue(services: "Services", task: dict[str, Any], attempt: int, code: str, reason: str) -> None:
    async with services.db.transaction() as conn:
        await conn.execute(analysis_tasks.update().where(
            analysis_tasks.c.id == task["id"], analysis_tasks.c.attempts == attempt,
            analysis_tasks.c.state == "running").values(
            state="queued", error_code=code, error=reason[:500], lease_until=None, updated_at=utcnow()))
    await progress.announce(services.cache.pubsub, task["id"], "queued")


def _timings(task: dict[str, Any], started, call_ms: float, response: dict[str, Any]) -> dict[str, float]:
    now = utcnow()
    server = model_timings(response)
    return {"queue_ms": round((started - task["created_at"]).total_seconds() * 1000, 3),
            "model_call_ms": round(call_ms, 3), **{f"model_{k}": v for k, v in server.items()},
            "total_ms": round((now - task["created_at"]).total_seconds() * 1000, 3)}


async def _run_claimed(services: "Services", task: dict[str, Any], attempt: int) -> str:
    model = MODELS[task["model"]]
    started = utcnow()
    try:
        request = await load_request(services, model, task)
        response, call_ms = await services.models.infer(model.name, model.version, request)
        result = structured_result(model.name, model.version, response, task["parameters"] or {})
    except InputGone as exc:
        await fail(services, task, attempt, "input-gone", str(exc))
        return "failed"
    except ModelRejectedInput as exc:
        await fail(services, task, attempt, "model-rejected-input", str(exc))
        return "failed"
    except InvalidModelOutput as exc:
        await fail(services, task, attempt, "invalid-model-output", str(exc))
        return "failed"
    except TransientError as exc:
        if attempt >= services.settings.analysis_max_attempts:
            await fail(services, task, attempt, "model-unavailable",
                       f"the model did not answer after {attempt} attempts: {exc}")
            return "failed"
        await _requeue(services, task, attempt, "model-unavailable", str(exc))
        raise
    written = await finish(services, task, attempt, {
        "state": "succeeded", "result": result, "timings": _timings(task, started, call_ms, response),
        "error_code": None, "error": None})
    return "succeeded" if written else (await load(services.db, task["id"]))["state"]


async def run_task(services: "Services", task_id: str, institution_id: str) -> str:
    """Run the task if it still needs running; its state after. TransientError: deliver again later."""
    task = await load(services.db, task_id)
    if task is None or task["institution_id"] != institution_id:
        raise PermanentError("no such analysis task")
    if task["state"] in FINISHED:
        return task["state"]                        # a duplicate or late delivery: nothing to do
    lock = await services.cache.locks.acquire(lock_key(task), services.settings.analysis_lock_ttl_s, wait_s=0)
    if lock is None:
        task = await load(services.db, task_id)
        if task["state"] in FINISHED or task["state"] == "running":
            return task["state"]                    # another delivery holds it; the reaper watches its lease
        raise TransientError("another task of the same input holds the input's lock")
    try:
        task = await load(services.db, task_id)      # fresh, under the lock
        if task["state"] in FINISHED:
            return task["state"]
        if task["attempts"] >= services.settings.analysis_max_attempts:
            await fail(services, task, task["attempts"], "too-many-attempts",
                       f"the task was started {task['attempts']} times without finishing")
            return "failed"
        attempt = await _claim(services, task)
        if attempt is None:
            return (await load(services.db, task_id))["state"]
        return await _run_claimed(services, {**task, "attempts": attempt, "started_at": task["started_at"]}, attempt)
    finally:
        await lock.release()
