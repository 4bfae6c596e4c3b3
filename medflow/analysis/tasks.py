"""Analysis tasks: submission (idempotent, announced through the outbox), status, list, re-run.

The same input and model submitted again is the same task: the input's fingerprint is
part of a unique key (institution, model, version, input, run), so even concurrent
duplicates end on one row and one event. An ``Idempotency-Key`` header names a
submission too; reused for a different input it is a conflict. A re-run is the next
``run`` of the same input, so re-running never loses the earlier output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from medflow.analysis.inputs import resolve
from medflow.analysis.models import checked_parameters, model_input
from medflow.auth.principal import Principal
from medflow.bus.events import make_event
from medflow.bus.outbox import publish_staged, stage
from medflow.bus.ports import EventBus
from medflow.db.engine import Database, is_unique_violation
from medflow.db.schema import analysis_reviews, analysis_tasks
from medflow.errors import Problem, conflict, forbidden, not_found
from medflow.ids import new_id, utcnow
from medflow.pagination import decode_time_cursor, encode_time_cursor

ANALYSIS_REQUESTED = "org.medflow.analysis.requested.v1"
ANALYSIS_FINISHED = "org.medflow.analysis.finished.v1"
SOURCE = "/medflow/analyses"
FINISHED = ("succeeded", "failed")


@dataclass(frozen=True)
class Submission:
    case_id: str
    item_id: str
    model: str
    model_version: str | None = None
    parameters: dict[str, Any] | None = None


def requested_event(task: dict[str, Any], source: str = SOURCE):
    return make_event(ANALYSIS_REQUESTED, source, task["id"], {
        "task_id": task["id"], "institution_id": task["institution_id"], "model": task["model"],
        "model_version": task["model_version"], "attempt": task["attempts"] + 1})


def require_doctor(who: Principal) -> None:
    if who.role != "doctor":
        raise forbidden("Only doctors submit and review analyses.")


async def _one(conn, *conditions) -> dict[str, Any] | None:
    row = (await conn.execute(sa.select(analysis_tasks).where(*conditions)
                              .order_by(analysis_tasks.c.run.desc()).limit(1))).mappings().first()
    return dict(row) if row else None


async def _latest_for_input(db: Database, institution_id: str, model: str, version: str, digest: str) -> dict[str, Any] | None:
    async with db.connect() as conn:
        return await _one(conn, analysis_tasks.c.institution_id == institution_id, analysis_tasks.c.model == model,
                          analysis_tasks.c.model_version == version, analysis_tasks.c.input_digest == digest)


async def _by_key(db: Database, who: Principal, key: str) -> dict[str, Any] | None:
    async with db.connect() as conn:
        return await _one(conn, analysis_tasks.c.institution_id == who.institution_id,
                          analysis_tasks.c.requested_by == who.user_id, analysis_tasks.c.idempotency_key == key)


async def _insert(db: Database, bus: EventBus, row: dict[str, Any]) -> dict[str, Any]:
    event = requested_event(row)
    async with db.transaction() as conn:
        await conn.execute(analysis_tasks.insert().values(**row))
        await stage(conn, [event])
    await publish_staged(db, bus, [event])
    return row


async def submit(db: Database, bus: EventBus, who: Principal, sub: Submission, *,
                 idempotency_key: str | None = None) -> tuple[dict[str, Any], bool]:
    """(the task, created?). 404 for an item not in the caller's institution, 422 for an
    input the model cannot read, 409 for an Idempotency-Key reused for another input."""
    require_doctor(who)
    model = model_input(sub.model, sub.model_version)
    params = checked_parameters(model, sub.parameters)
    resolved = await resolve(db, who.institution_id, sub.case_id, sub.item_id, model, params)
    if idempotency_key:
        keyed = await _by_key(db, who, idempotency_key)
        if keyed is not None:
            if keyed["input_digest"] != resolved.digest or keyed["model"] != model.name:
                raise conflict("This Idempotency-Key was used for another analysis.", "idempotency-key-reused")
            return keyed, False
    existing = await _latest_for_input(db, who.institution_id, model.name, model.version, resolved.digest)
    if existing is not None:
        return existing, False
    now = utcnow()
    row = {"id": new_id(), "institution_id": who.institution_id, "case_id": sub.case_id, "item_id": sub.item_id,
           "model": model.name, "model_version": model.version, "input_digest": resolved.digest, "run": 1,
           "parameters": params, "state": "queued", "attempts": 0, "requeues": 0, "review_state": "pending",
           "requested_by": who.user_id, "idempotency_key": idempotency_key, "created_at": now, "updated_at": now}
    try:
        return await _insert(db, bus, row), True
    except sa.exc.IntegrityError as exc:
        if not is_unique_violation(exc):
            raise
    # a concurrent duplicate won the race: its task is ours
    found = await _latest_for_input(db, who.institution_id, model.name, model.version, resolved.digest)
    if found is None and idempotency_key:
        found = await _by_key(db, who, idempotency_key)
    if found is None:  # pragma: no cover - a unique violation names a row that exists
        raise conflict("The analysis could not be created; try again.")
    return found, False


async def get(db: Database, institution_id: str, task_id: str) -> dict[str, Any]:
    async with db.connect() as conn:
        task = await _one(conn, analysis_tasks.c.id == task_id, analysis_tasks.c.institution_id == institution_id)
    if task is None:
        raise not_found("analysis")
    return task


async def load(db: Database, task_id: str) -> dict[str, Any] | None:
    async with db.connect() as conn:
        return await _one(conn, analysis_tasks.c.id == task_id)


async def list_tasks(db: Database, institution_id: str, *, case_id: str | None, mine_of: str | None,
                     state: str | None, limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first, keyset paginated, by case or by requester."""
    t = analysis_tasks
    query = sa.select(t).where(t.c.institution_id == institution_id)
    if case_id:
        query = query.where(t.c.case_id == case_id)
    if mine_of:
        query = query.where(t.c.requested_by == mine_of)
    if state:
        query = query.where(t.c.state == state)
    after = decode_time_cursor(cursor)
    if after:
        at, last_id = after
        query = query.where(sa.or_(t.c.created_at < at, sa.and_(t.c.created_at == at, t.c.id < last_id)))
    async with db.connect() as conn:
        rows = [dict(r) for r in (await conn.execute(query.order_by(t.c.created_at.desc(), t.c.id.desc())
                                                     .limit(limit + 1))).mappings()]
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_time_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None
    return rows, next_cursor


async def rerun(db: Database, bus: EventBus, who: Principal, task_id: str, reason: str | None) -> dict[str, Any]:
    """A new run of a finished task's input (the earlier run and its output stay as they are)."""
    require_doctor(who)
    task = await get(db, who.institution_id, task_id)
    if task["state"] not in FINISHED:
        raise conflict("The analysis is still running; re-run it once it has finished.", "analysis-not-finished")
    if task["review_state"] == "rerun":
        raise conflict("This analysis was re-run already; re-run its newest run.", "analysis-already-reviewed")
    model = model_input(task["model"], task["model_version"])
    resolved = await resolve(db, who.institution_id, task["case_id"], task["item_id"], model, task["parameters"] or {})
    latest = await _latest_for_input(db, who.institution_id, model.name, model.version, resolved.digest)
    now = utcnow()
    row = {"id": new_id(), "institution_id": who.institution_id, "case_id": task["case_id"], "item_id": task["item_id"],
           "model": model.name, "model_version": model.version, "input_digest": resolved.digest,
           "run": (latest["run"] + 1) if latest else 1, "parameters": task["parameters"], "state": "queued",
           "attempts": 0, "requeues": 0, "review_state": "pending", "requested_by": who.user_id,
           "idempotency_key": None, "rerun_of": task["id"], "created_at": now, "updated_at": now}
    event = requested_event(row)
    try:
        async with db.transaction() as conn:
            changed = await conn.execute(analysis_tasks.update().where(
                analysis_tasks.c.id == task["id"], analysis_tasks.c.review_state == task["review_state"])
                .values(review_state="rerun", updated_at=now))
            if changed.rowcount != 1:
                raise conflict("The analysis was reviewed meanwhile; load it again.", "analysis-changed")
            await conn.execute(analysis_reviews.insert().values(
                id=new_id(), institution_id=who.institution_id, task_id=task["id"], decision="rerun", reason=reason,
                written={"rerun_task_id": row["id"]}, reviewer_id=who.user_id, created_at=now))
            await conn.execute(analysis_tasks.insert().values(**row))
            await stage(conn, [event])
    except sa.exc.IntegrityError as exc:
        if not is_unique_violation(exc):
            raise
        raise conflict("This input was re-run meanwhile; load the newest run.", "analysis-changed") from None
    await publish_staged(db, bus, [event])
    return row


def bad_key(key: str | None) -> None:
    if key is not None and not (1 <= len(key) <= 100):
        raise Problem(422, "invalid-idempotency-key", "Idempotency-Key must be 1 to 100 characters.")
