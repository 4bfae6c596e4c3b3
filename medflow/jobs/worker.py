"""Running a job: bounded batches, each in its own transaction with the job's checkpoint.

Exactly once in effect
    A batch locks the job row (``SELECT … FOR UPDATE``), reads the checkpoint (the last case
    id handled), takes the next ``batch_size`` cases after it in id order, applies its effect
    and writes the new checkpoint and counts — all in one transaction. A worker killed at
    any point either committed the batch (the next run starts after it) or did not (the
    next run redoes it from the old checkpoint): no case twice, none missed, exact counts.
    Two deliveries of the same job are kept apart by a lock per job (Redis in the cluster);
    the job row lock makes even a lost lock harmless.

Long jobs
    One delivery works for at most ``job_slice_s`` seconds, then publishes a continuation
    event for the same job and returns, so no HTTP delivery outlives Knative's or the
    relay's time-out. Cancel and the deadline are checked before every batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from medflow.bus.events import make_event
from medflow.db.schema import case_archive, case_items, cases, jobs, record_versions
from medflow.errors import PermanentError, TransientError
from medflow.ids import new_id, utcnow
from medflow.jobs.model import FINISHED, JOB_REQUESTED, audit_event, case_conditions
from medflow.records.released import forget_released
from medflow.storage.ports import ObjectNotFound

log = logging.getLogger("medflow.jobs")
LOCK_TTL_S = 6.0
SOURCE = "/medflow/job_worker"
CASE_OBJECT_BUCKETS = ("dicom", "renders")
HANDOVER = "handover"      # the slice is over: a continuation event carries the job on


class _Stop(Exception):
    """The job is no longer running (cancelled, or finished by another delivery)."""


@dataclass(frozen=True)
class BatchResult:
    handled: int        # cases taken in this batch (0: the job is complete)
    done: int
    failed: int


async def run_job(services, job_id: str, institution_id: str, continuation: int = 0) -> str:
    """Work on a job until it finishes, stops, or its time slice ends; the job's state after."""
    lock = await services.cache.locks.acquire(f"job:{job_id}", LOCK_TTL_S, wait_s=0)
    if lock is None:
        raise TransientError("another delivery is working on this job")
    try:
        state = await _run_locked(services, job_id, institution_id, continuation, lock)
    finally:
        await lock.release()
    if state == HANDOVER:   # published once the lock is free, so the next delivery can take it at once
        job = await _load(services.db, job_id)
        await services.bus.publish(make_event(JOB_REQUESTED, SOURCE, job_id, {
            "job_id": job_id, "institution_id": institution_id, "kind": job["kind"], "continuation": continuation + 1}))
        return "running"
    return state


async def _load(db, job_id: str) -> dict[str, Any] | None:
    async with db.connect() as conn:
        row = (await conn.execute(sa.select(jobs).where(jobs.c.id == job_id))).mappings().first()
    return dict(row) if row else None


async def _run_locked(services, job_id: str, institution_id: str, continuation: int, lock) -> str:
    settings, db = services.settings, services.db
    job = await _load(db, job_id)
    if job is None or job["institution_id"] != institution_id:
        raise PermanentError("no such job in that institution")
    if job["state"] in FINISHED:
        return job["state"]          # a redelivered or duplicate event: nothing to do
    if job["state"] == "queued":
        await _start(db, job)
    started = time.monotonic()
    while True:
        job = await _load(db, job_id)
        if job["state"] != "running":
            return job["state"]
        if utcnow() >= job["deadline_at"]:
            return await _finish(services, job, "expired",
                                 f"deadline passed after {job['done']} done, {job['failed']} failed")
        if lock.lost:
            raise TransientError("lost the job lock; another delivery may resume it")
        if job["kind"] == "export":
            from medflow.jobs.export import run_export
            await run_export(services, job)
            return (await _load(db, job_id))["state"]
        try:
            result = await run_batch(services, job, settings.job_batch_size)
        except _Stop:
            return (await _load(db, job_id))["state"]
        if result.handled == 0:
            return await _finish(services, await _load(db, job_id), "succeeded", None)
        if time.monotonic() - started >= settings.job_slice_s:
            return HANDOVER
        if settings.job_batch_pause_s:
            await asyncio.sleep(settings.job_batch_pause_s)


async def _start(db, job: dict[str, Any]) -> None:
    """queued → running, with the total the job will handle (for progress)."""
    total = job["total"]
    if total is None and job["kind"] != "export":
        conditions = case_conditions(job["institution_id"], job["params"]) + _pending(job["kind"])
        async with db.connect() as conn:
            total = (await conn.execute(sa.select(sa.func.count()).select_from(cases).where(*conditions))).scalar_one()
    now = utcnow()
    async with db.transaction() as conn:
        await conn.execute(jobs.update().where(jobs.c.id == job["id"], jobs.c.state == "queued")
                           .values(state="running", started_at=now, updated_at=now, total=total))


def _pending(kind: str) -> list[sa.ColumnElement[bool]]:
    """Cases a job of this kind still has to handle (filter jobs); id lists take every id."""
    if kind == "delete":
        return [cases.c.deleted_at.is_(None)]
    if kind == "archive":
        return [~sa.exists().where(case_archive.c.case_id == cases.c.id)]
    return []


async def run_batch(services, job: dict[str, Any], batch_size: int) -> BatchResult:
    """One batch, one transaction: effect + checkpoint + counts, or nothing at all.

    The batch is a range of case ids: the next ``batch_size`` ids after the checkpoint that
    the job's filter selects (or the next slice of its sorted id list). A delete batch works
    on that range inside the database (no case rows travel to the worker)."""
    by_ids = bool(job["params"].get("case_ids"))
    async with services.db.transaction() as conn:
        current = (await conn.execute(sa.select(jobs.c.state, jobs.c.checkpoint).where(jobs.c.id == job["id"])
                                      .with_for_update())).first()
        if current is None or current.state != "running":
            raise _Stop()
        if by_ids:   # the next slice of the (sorted) id list; an id no longer found counts as failed
            chunk = [i for i in job["params"]["case_ids"] if not current.checkpoint or i > current.checkpoint][:batch_size]
            if not chunk:
                return BatchResult(0, 0, 0)
            scope = [cases.c.institution_id == job["institution_id"], cases.c.id.in_(chunk)]
            last = chunk[-1]
        else:
            scope = case_conditions(job["institution_id"], job["params"]) + _pending(job["kind"])
            if current.checkpoint:
                scope.append(cases.c.id > current.checkpoint)
            found, last = await _next_range(conn, scope, batch_size)
            if not found:
                return BatchResult(0, 0, 0)
            scope.append(cases.c.id <= last)
        if job["kind"] == "delete":
            done, patient_ids = await _soft_delete(conn, job, scope)
        elif job["kind"] == "archive":
            rows = (await conn.execute(sa.select(cases.c.id, cases.c.deleted_at, cases.c.institution_id)
                                       .where(*scope).order_by(cases.c.id).with_for_update())).all()
            done, patient_ids = await _archive(services, conn, job, rows), set()
        else:
            raise PermanentError(f"job kind {job['kind']} has no batch step")
        handled = len(chunk) if by_ids else found
        failed = handled - done        # gone or changed meanwhile: not done by this job
        await conn.execute(jobs.update().where(jobs.c.id == job["id"]).values(
            checkpoint=last, done=jobs.c.done + done, failed=jobs.c.failed + failed,
            batches=jobs.c.batches + 1, updated_at=utcnow()))
    for patient_id in patient_ids:   # a deleted case leaves its patient's released summaries
        await forget_released(services.cache.cache, job["institution_id"], patient_id)
    return BatchResult(handled, done, failed)


async def _next_range(conn, scope: list[sa.ColumnElement[bool]], batch_size: int) -> tuple[int, str | None]:
    """How many cases the next batch holds (at most ``batch_size``) and the id of its last one."""
    ids = sa.select(cases.c.id).where(*scope).order_by(cases.c.id).limit(batch_size).subquery()
    found, last = (await conn.execute(sa.select(sa.func.count(), sa.func.max(ids.c.id)))).one()
    return found, last


def version_id(stamp: str) -> sa.ColumnElement[str]:
    """Ids for the version rows a bulk delete writes in SQL: the ULID time part of the batch's
    ``new_id()`` followed by the case id's random part, so each is a ULID, unique per case
    and millisecond, and in time order like ids made one by one."""
    return sa.literal(stamp[:10], sa.String) + sa.func.substr(cases.c.id, 11, 16)


async def _soft_delete(conn, job: dict[str, Any], scope: list[sa.ColumnElement[bool]]) -> tuple[int, set[str]]:
    """Soft-delete the live cases in ``scope``, keeping a version row each (who, when, why),
    in three statements whatever the batch size; (cases deleted, their patients)."""
    live = scope + [cases.c.deleted_at.is_(None)]
    locked = (await conn.execute(sa.select(sa.func.count()).select_from(cases).where(*live).with_for_update())).scalar_one()
    if not locked:
        return 0, set()
    patient_ids = set((await conn.execute(sa.select(cases.c.patient_id).where(*live).distinct())).scalars())
    now, columns = utcnow(), record_versions.c
    versions = sa.select(
        version_id(new_id()), cases.c.institution_id, sa.literal("case", sa.String), cases.c.id, cases.c.version,
        sa.literal(job["submitted_by"], columns.changed_by.type), sa.literal(now, columns.changed_at.type),
        sa.literal(f"bulk delete job {job['id']}", sa.String), sa.literal({"deleted_at": None}, columns.old_values.type),
    ).where(*live)
    written = await conn.execute(record_versions.insert().from_select(
        ["id", "institution_id", "entity_type", "entity_id", "version", "changed_by", "changed_at", "reason",
         "old_values"], versions))
    deleted = await conn.execute(cases.update().where(*live)
                                 .values(deleted_at=now, updated_at=now, version=cases.c.version + 1))
    if not written.rowcount == deleted.rowcount == locked:   # rows are locked: only a bypassed lock gets here
        raise TransientError("cases changed under the batch")
    return locked, patient_ids


async def case_objects(objects, conn, institution_id: str, case_id: str) -> list[tuple[str, str]]:
    """(bucket, key) of a case's objects in the DICOM and renders buckets: those under
    ``<institution>/<case>/`` and those of every imaging study the case links to
    (``<institution>/<study UID>/``, the imaging layout of medflow/imaging/ingest.py)."""
    linked = (await conn.execute(sa.select(case_items.c.content).where(
        case_items.c.case_id == case_id, case_items.c.kind == "imaging_study",
        case_items.c.deleted_at.is_(None)))).scalars()
    prefixes = [f"{institution_id}/{case_id}/"] + [f"{institution_id}/{c['study_instance_uid']}/" for c in linked
                                                   if c.get("study_instance_uid")]
    found = []
    for bucket in CASE_OBJECT_BUCKETS:
        for prefix in prefixes:
            found += [(bucket, info.key) for info in await objects.list(bucket, prefix, limit=10_000)]
    return found


async def move_to_archive(objects, bucket: str, key: str) -> bool:
    """Copy to the archive bucket (``<bucket>/<key>``), then delete the original; idempotent."""
    try:
        await objects.copy(bucket, key, "archive", f"{bucket}/{key}")
    except ObjectNotFound:
        return False                     # moved by an earlier, interrupted run
    await objects.delete(bucket, key)
    return True


async def _archive(services, conn, job: dict[str, Any], rows) -> int:
    """Move each case's objects to the archive tier and mark the case archived. The moves are
    idempotent, so a batch redone after a crash finishes the moves it had started."""
    now, done, marks = utcnow(), 0, []
    already = set((await conn.execute(sa.select(case_archive.c.case_id)
                                      .where(case_archive.c.case_id.in_([r.id for r in rows])))).scalars())
    for r in rows:
        if r.id in already or r.deleted_at is not None:
            continue
        moved = 0
        for bucket, key in await case_objects(services.objects, conn, r.institution_id, r.id):
            moved += await move_to_archive(services.objects, bucket, key)
        marks.append({"case_id": r.id, "institution_id": r.institution_id, "job_id": job["id"],
                      "objects_moved": moved, "archived_at": now})
        done += 1
    if marks:
        await conn.execute(case_archive.insert(), marks)
    return done


async def _finish(services, job: dict[str, Any], state: str, error: str | None,
                  result: dict[str, Any] | None = None, conn=None) -> str:
    """Mark the job finished (only if still running) and audit it through the outbox."""
    from medflow.bus.outbox import publish_staged, stage
    now = utcnow()
    event = audit_event(services.catalogue, SOURCE, None, f"job.{state}", job["id"], institution_id=job["institution_id"],
                        outcome="success" if state == "succeeded" else "failure",
                        details={"kind": job["kind"], "done": job["done"], "failed": job["failed"]})
    async with services.db.transaction() as conn:
        changed = (await conn.execute(jobs.update().where(jobs.c.id == job["id"], jobs.c.state == "running").values(
            state=state, error=error, finished_at=now, updated_at=now,
            **({"result": result} if result is not None else {})))).rowcount
        if changed:
            await stage(conn, [event])
    if changed:
        await publish_staged(services.db, services.bus, [event])
    return state if changed else (await _load(services.db, job["id"]))["state"]
