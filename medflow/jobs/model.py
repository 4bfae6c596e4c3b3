"""Jobs: submission (idempotent, audited, announced through the outbox), status, list, cancel.

A job names its cases by a search filter or by an id list, always within the submitter's
institution. Administrators may run every kind; doctors may export (a large search result)
and see only their own jobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from medflow.audit.trail import AUDIT_RECORDED, AuditEntry
from medflow.auth.principal import Principal
from medflow.bus.catalogue import Catalogue
from medflow.bus.events import make_event
from medflow.bus.outbox import publish_staged, stage
from medflow.bus.ports import EventBus
from medflow.db.engine import Database, is_unique_violation
from medflow.db.schema import JOB_KINDS, cases, jobs
from medflow.errors import Problem, conflict, forbidden, not_found
from medflow.ids import new_id, utcnow
from medflow.pagination import decode_cursor, encode_cursor
from medflow.records.search import CaseFilter, filter_conditions

JOB_REQUESTED = "org.medflow.jobs.requested.v1"
SOURCE = "/medflow/jobs"
FINISHED = ("succeeded", "failed", "cancelled", "expired")
DOCTOR_KINDS = ("export",)
FILTER_FIELDS = ("patient_id", "time_from", "time_to", "exam_type", "modality", "annotation_status", "doctor_id",
                 "department_id", "diagnosis_code", "quality_label", "title_contains")


@dataclass(frozen=True)
class JobRequest:
    kind: str
    filter: dict[str, Any] | None = None      # search filter fields (FILTER_FIELDS)
    case_ids: list[str] | None = None
    confirm_all: bool = False                 # a filter that matches every case must say so
    options: dict[str, Any] | None = None     # export: mode full|incremental, format xlsx|csv
    deadline_s: int | None = None


def unknown_kind(kind: str) -> Problem:
    return Problem(422, "unknown-job-kind", f"Unknown job kind; known kinds: {', '.join(JOB_KINDS)}.")


def case_filter(institution_id: str, stored: dict[str, Any] | None) -> CaseFilter:
    values = dict(stored or {})
    for name in ("time_from", "time_to"):
        if isinstance(values.get(name), str):
            values[name] = datetime.fromisoformat(values[name])
    return CaseFilter(institution_id=institution_id, include_deleted=True,
                      **{k: v for k, v in values.items() if k in FILTER_FIELDS})


def case_conditions(institution_id: str, params: dict[str, Any]) -> list[sa.ColumnElement[bool]]:
    """The cases a job's parameters name (deleted ones included: the kind decides)."""
    if params.get("case_ids"):
        return [cases.c.institution_id == institution_id, cases.c.id.in_(params["case_ids"])]
    return filter_conditions(case_filter(institution_id, params.get("filter")))


async def _check_target(db: Database, institution_id: str, request: JobRequest, max_ids: int) -> dict[str, Any]:
    """The stored parameters, after the bad-input checks: nothing is done when they fail."""
    if request.case_ids is not None and request.filter is not None:
        raise Problem(422, "filter-or-ids", "Give either a filter or case ids, not both.")
    options = dict(request.options or {})
    if request.kind == "export":
        options.setdefault("mode", "full")
        options.setdefault("format", "xlsx")
        if options["mode"] not in ("full", "incremental") or options["format"] not in ("xlsx", "csv"):
            raise Problem(422, "invalid-export-options", "Export mode is full or incremental, format xlsx or csv.")
        if request.case_ids is None and not request.filter:
            return {"filter": None, "options": options}   # a backup of the institution: the point of it
    if request.case_ids is not None:
        ids = sorted(set(request.case_ids))
        if not ids or len(ids) > max_ids:
            raise Problem(422, "invalid-case-ids", f"Give 1 to {max_ids} case ids.")
        async with db.connect() as conn:
            found = (await conn.execute(sa.select(sa.func.count()).select_from(cases).where(
                cases.c.institution_id == institution_id, cases.c.id.in_(ids)))).scalar_one()
        if found != len(ids):
            raise Problem(422, "unknown-cases", f"{len(ids) - found} of the case ids are not cases of your institution.")
        return {"case_ids": ids, "options": options}
    stored = {k: v for k, v in (request.filter or {}).items() if v is not None}
    unknown = sorted(set(stored) - set(FILTER_FIELDS))
    if unknown:
        raise Problem(422, "unknown-filter", f"Unknown filter fields: {', '.join(unknown)}.")
    if not stored and not request.confirm_all:
        raise Problem(422, "confirmation-required",
                      "The filter matches every case of the institution; send confirm_all=true to mean it.")
    stored = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in stored.items()}
    params = {"filter": stored, "options": options}
    conditions = case_conditions(institution_id, params)
    if request.kind != "export":
        conditions.append(cases.c.deleted_at.is_(None))
    async with db.connect() as conn:
        any_row = (await conn.execute(sa.select(cases.c.id).where(*conditions).limit(1))).first()
    if any_row is None:
        raise Problem(422, "nothing-matches", "The filter matches no case; nothing to do.")
    return params


def _requested_event(job: dict[str, Any], continuation: int = 0) -> Any:
    return make_event(JOB_REQUESTED, SOURCE, job["id"], {"job_id": job["id"], "institution_id": job["institution_id"],
                                                         "kind": job["kind"], "continuation": continuation})


def audit_event(catalogue: Catalogue, source: str, who: Principal | None, action: str, resource_id: str,
                outcome: str = "success", details: dict[str, Any] | None = None, institution_id: str | None = None):
    entry = AuditEntry(action=action, resource_type="job", outcome=outcome, occurred_at=utcnow(),
                       resource_id=resource_id, institution_id=institution_id or (who.institution_id if who else None),
                       actor_id=who.user_id if who else None, actor_role=who.role if who else "system", details=details)
    data = entry.to_event_data()
    catalogue.validate(AUDIT_RECORDED, data)
    return make_event(AUDIT_RECORDED, source, resource_id, data)


async def submit(db: Database, bus: EventBus, catalogue: Catalogue, who: Principal, request: JobRequest, *,
                 idempotency_key: str | None, default_deadline_s: int, max_ids: int,
                 source: str = SOURCE) -> tuple[dict[str, Any], bool]:
    """(the job, created?) — the same Idempotency-Key from the same user returns the same job."""
    if request.kind not in JOB_KINDS:
        raise unknown_kind(request.kind)
    if who.role != "admin" and request.kind not in DOCTOR_KINDS:
        raise forbidden("Only administrators run bulk deletes and archives.")
    if idempotency_key:
        existing = await _by_key(db, who, idempotency_key)
        if existing is not None:
            return existing, False
    params = await _check_target(db, who.institution_id, request, max_ids)
    now = utcnow()
    job = {"id": new_id(), "institution_id": who.institution_id, "kind": request.kind, "state": "queued",
           "submitted_by": who.user_id, "submitter_role": who.role, "idempotency_key": idempotency_key,
           "params": params, "total": len(params["case_ids"]) if params.get("case_ids") else None,
           "done": 0, "failed": 0, "batches": 0,
           "deadline_at": now + timedelta(seconds=request.deadline_s or default_deadline_s),
           "created_at": now, "updated_at": now}
    catalogue.validate(JOB_REQUESTED, _requested_event(job).data)
    events = [_requested_event(job), audit_event(catalogue, source, who, "job.submitted", job["id"],
                                                 details={"kind": request.kind, "by": "ids" if params.get("case_ids") else "filter",
                                                          "filters": sorted((params.get("filter") or {}))})]
    try:
        async with db.transaction() as conn:
            await conn.execute(jobs.insert().values(**job))
            await stage(conn, events)
    except sa.exc.IntegrityError as exc:
        if idempotency_key and is_unique_violation(exc):   # a concurrent submit with the same key won
            return await _by_key(db, who, idempotency_key), False
        raise
    await publish_staged(db, bus, events)
    return {**job, "started_at": None, "finished_at": None, "error": None, "result": None, "checkpoint": None}, True


async def _by_key(db: Database, who: Principal, key: str) -> dict[str, Any] | None:
    async with db.connect() as conn:
        row = (await conn.execute(sa.select(jobs).where(jobs.c.institution_id == who.institution_id,
                                                        jobs.c.submitted_by == who.user_id,
                                                        jobs.c.idempotency_key == key))).mappings().first()
    return dict(row) if row else None


def _visible(who: Principal) -> list[sa.ColumnElement[bool]]:
    conditions = [jobs.c.institution_id == who.institution_id]
    if who.role != "admin":
        conditions.append(jobs.c.submitted_by == who.user_id)
    return conditions


async def get(db: Database, who: Principal, job_id: str) -> dict[str, Any]:
    """A job the caller may see; 404 otherwise (another institution's id says nothing)."""
    async with db.connect() as conn:
        row = (await conn.execute(sa.select(jobs).where(jobs.c.id == job_id, *_visible(who)))).mappings().first()
    if row is None:
        raise not_found("job")
    return dict(row)


async def list_jobs(db: Database, who: Principal, limit: int, cursor: str | None,
                    state: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first, keyset pages on (created_at, id)."""
    conditions = _visible(who)
    if state:
        conditions.append(jobs.c.state == state)
    if cursor:
        created, last_id = decode_cursor(cursor, 2)
        created = datetime.fromisoformat(created)
        conditions.append(sa.or_(jobs.c.created_at < created, sa.and_(jobs.c.created_at == created, jobs.c.id < last_id)))
    async with db.connect() as conn:
        rows = (await conn.execute(sa.select(jobs).where(*conditions)
                                   .order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit + 1))).mappings().all()
    page = [dict(r) for r in rows[:limit]]
    more = len(rows) > limit
    return page, encode_cursor([page[-1]["created_at"].isoformat(), page[-1]["id"]]) if more and page else None


async def cancel(db: Database, bus: EventBus, catalogue: Catalogue, who: Principal, job_id: str) -> dict[str, Any]:
    """Stop a queued or running job: the worker stops before its next batch; what is done stays done."""
    job = await get(db, who, job_id)
    if job["state"] in FINISHED:
        raise conflict(f"The job has already finished ({job['state']}).", code="job-finished")
    now = utcnow()
    event = audit_event(catalogue, SOURCE, who, "job.cancelled", job_id, details={"kind": job["kind"]})
    async with db.transaction() as conn:
        changed = (await conn.execute(jobs.update().where(jobs.c.id == job_id, jobs.c.state.in_(("queued", "running")))
                                      .values(state="cancelled", finished_at=now, updated_at=now))).rowcount
        if not changed:
            raise conflict("The job has just finished.", code="job-finished")
        await stage(conn, [event])
    await publish_staged(db, bus, [event])
    return await get(db, who, job_id)
