"""jobs: bulk jobs (delete, archive, export) submitted, followed, cancelled; backup batches;
dead letters, consumer lag and alert thresholds for administrators (HTTP).

Submitting answers ``202 Accepted`` with the job and its status URL; the work is done by
the ``job_worker`` CloudEvent function. Administrators see and manage every job of their
institution, doctors their own (doctors may export). Submissions, cancels and dead-letter
replays are audited. Use cases: ``medflow.jobs``, ``medflow.bus.admin``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from medflow.accounts.schemas import EntityId
from medflow.audit.trail import audit
from medflow.auth.principal import ADMIN, STAFF
from medflow.bus.outbox import GRACE_S, sweep
from medflow.bus import admin as bus_admin
from medflow.errors import Problem, forbidden, not_found
from medflow.ids import utcnow
from medflow.jobs import alerts
from medflow.jobs import model as use_cases
from medflow.jobs.export import get_batch, list_batches
from medflow.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from medflow.records.schemas import SearchFilters
from medflow.runtime.entry import entrypoint
from medflow.runtime.spec import Answer, Call, HttpFunction, RequestModel, ResponseModel

spec = HttpFunction("jobs", "Bulk jobs, backups, dead letters and lag")
SOURCE = use_cases.SOURCE


class ExportOptions(RequestModel):
    mode: Literal["full", "incremental"] = "full"
    format: Literal["xlsx", "csv"] = "xlsx"


class JobIn(RequestModel):
    kind: str = Field(max_length=32, description="delete | archive | export (422 `unknown-job-kind` otherwise).")
    filter: SearchFilters | None = Field(None, description="The cases, as a search filter (or give case_ids).")
    case_ids: list[EntityId] | None = Field(None, max_length=1_000_000)
    confirm_all: bool = Field(False, description="Required when the filter is empty (every case of the institution).")
    export: ExportOptions | None = None
    deadline_s: int | None = Field(None, ge=1, le=7 * 86400, description="Stop (state `expired`) after this long.")


class JobOut(ResponseModel):
    id: str
    kind: str
    state: str
    submitted_by: str
    total: int | None
    done: int
    failed: int
    progress: float | None = Field(description="done + failed over total, 0–1; null while the total is unknown.")
    error: str | None
    result: dict[str, Any] | None
    deadline_at: datetime
    created_at: datetime
    started_at: datetime | None
    updated_at: datetime
    finished_at: datetime | None
    status_url: str


class JobPage(ResponseModel):
    items: list[JobOut]
    next_cursor: str | None


class ListQuery(RequestModel):
    limit: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    cursor: str | None = Field(None, max_length=512)
    state: Literal["queued", "running", "succeeded", "failed", "cancelled", "expired"] | None = None


def job_out(job: dict[str, Any]) -> JobOut:
    total = job["total"]
    progress = None if not total else min(1.0, (job["done"] + job["failed"]) / total)
    if job["state"] == "succeeded":
        progress = 1.0
    return JobOut(id=job["id"], kind=job["kind"], state=job["state"], submitted_by=job["submitted_by"], total=total,
                  done=job["done"], failed=job["failed"], progress=progress, error=job["error"], result=job["result"],
                  deadline_at=job["deadline_at"], created_at=job["created_at"], started_at=job["started_at"],
                  updated_at=job["updated_at"], finished_at=job["finished_at"], status_url=status_url(job["id"]))


def status_url(job_id: str) -> str:
    return f"/api/jobs/jobs/{job_id}"


def accepted(job: dict[str, Any]) -> Answer:
    return Answer(job_out(job), 202, {"Location": status_url(job["id"])})


@spec.operation("POST", "/jobs", access=STAFF, body=JobIn, response=JobOut, status=202, errors=(403, 409, 422),
                summary="Submit a bulk job")
async def submit(call: Call) -> Answer:
    """Answered at once with `202 Accepted`, the job and its status URL (`Location`). An
    `Idempotency-Key` header makes retries safe: the same key from the same user returns the
    same job. Nothing is done when the request is refused: unknown kind (422
    `unknown-job-kind`), an empty filter without `confirm_all` (422 `confirmation-required`),
    a filter matching nothing (422 `nothing-matches`), ids outside your institution (422
    `unknown-cases`). Doctors may only export."""
    b, s = call.body, call.services
    key = call.headers.get("idempotency-key")
    if key is not None and not (1 <= len(key) <= 100):
        raise Problem(422, "invalid-idempotency-key", "Idempotency-Key must be 1 to 100 characters.")
    request = use_cases.JobRequest(
        kind=b.kind, filter=b.filter.model_dump(exclude_none=True) if b.filter else None, case_ids=b.case_ids,
        confirm_all=b.confirm_all, options=b.export.model_dump() if b.export else None, deadline_s=b.deadline_s)
    job, _ = await use_cases.submit(s.db, s.bus, s.catalogue, call.caller(), request, idempotency_key=key,
                                    default_deadline_s=s.settings.job_deadline_s, max_ids=s.settings.job_max_ids)
    return accepted(job)


@spec.operation("GET", "/jobs", access=STAFF, query=ListQuery, response=JobPage, summary="List jobs")
async def list_jobs(call: Call) -> JobPage:
    """Newest first. Administrators: every job of the institution; doctors: their own."""
    q = call.query
    found, cursor = await use_cases.list_jobs(call.services.db, call.caller(), q.limit, q.cursor, q.state)
    return JobPage(items=[job_out(j) for j in found], next_cursor=cursor)


@spec.operation("GET", "/jobs/{job_id}", access=STAFF, response=JobOut, errors=(404,), summary="Job status")
async def status(call: Call) -> JobOut:
    """State, progress, counts done and failed, timestamps, and the result (an export's backup
    batch). A job still queued after a while has its event published again if the first
    publish was lost (the outbox sweep)."""
    s = call.services
    job = await use_cases.get(s.db, call.caller(), call.path["job_id"])
    if job["state"] == "queued" and (utcnow() - job["created_at"]).total_seconds() > GRACE_S:
        await sweep(s.db, s.bus, older_than_s=GRACE_S)
    return job_out(job)


@spec.operation("POST", "/jobs/{job_id}/cancel", access=STAFF, response=JobOut, errors=(404, 409), summary="Cancel a job")
async def cancel(call: Call) -> JobOut:
    """The worker stops before its next batch; what is done stays done (counts say how much)."""
    s = call.services
    return job_out(await use_cases.cancel(s.db, s.bus, s.catalogue, call.caller(), call.path["job_id"]))


class BackupOut(ResponseModel):
    id: str
    job_id: str
    mode: str
    format: str
    created_by: str
    created_at: datetime
    since: datetime | None
    upto: datetime
    rows: int
    sha256: str
    size_bytes: int


class BackupPage(ResponseModel):
    items: list[BackupOut]


class DownloadOut(ResponseModel):
    url: str
    expires_in_s: int
    sha256: str
    size_bytes: int


def _backup_out(b: dict[str, Any]) -> BackupOut:
    return BackupOut(**{k: b[k] for k in BackupOut.model_fields})


@spec.operation("GET", "/backups", access=ADMIN, response=BackupPage, summary="List backup batches")
async def backups(call: Call) -> BackupPage:
    """The institution's export packages, newest first: who, when, what, checksum, size."""
    return BackupPage(items=[_backup_out(b) for b in await list_batches(call.services.db, call.caller().institution_id)])


@spec.operation("GET", "/backups/{batch_id}/download", access=STAFF, response=DownloadOut, errors=(404,),
                summary="Download link of a backup batch")
async def download(call: Call) -> DownloadOut:
    """A short-lived signed URL of the package (zip). Administrators: any batch of the
    institution; doctors: the packages of their own export jobs. Audited."""
    me, s = call.caller(), call.services
    batch = await get_batch(s.db, me.institution_id, call.path["batch_id"])
    if batch is None or (me.role != "admin" and batch["created_by"] != me.user_id):
        raise not_found("backup batch")
    ttl = s.settings.signed_url_ttl_s
    url = await s.objects.signed_url(batch["bucket"], batch["object_key"], ttl, filename=f"medflow-export-{batch['id']}.zip")
    await audit(s, source=SOURCE, action="backup.downloaded", resource_type="backup_batch",
                outcome="success", actor_id=me.user_id, actor_role=me.role, institution_id=me.institution_id,
                resource_id=batch["id"], details={"rows": batch["rows"]})
    return DownloadOut(url=url, expires_in_s=ttl, sha256=batch["sha256"], size_bytes=batch["size_bytes"])


# --- operating the bus (administrators) --------------------------------------------------

class GroupQuery(RequestModel):
    group: str = Field("job_worker", pattern=r"^[a-z][a-z0-9_]{1,40}$", description="A consumer group of the catalogue.")
    limit: int = Field(100, ge=1, le=1000)


class DeadLetterOut(ResponseModel):
    event_id: str
    type: str
    source: str
    subject: str | None
    reason: str
    attempts: int
    failed_at: datetime
    data_keys: list[str]
    origin: dict[str, str]


class DeadLetterPage(ResponseModel):
    group: str
    items: list[DeadLetterOut]


class ReplayIn(RequestModel):
    group: str = Field(pattern=r"^[a-z][a-z0-9_]{1,40}$")
    event_id: str = Field(min_length=1, max_length=128)


class ReplayOut(ResponseModel):
    replayed: str
    type: str


def _group(call: Call, name: str) -> str:
    group = bus_admin.known_group(call.services.catalogue, name)
    if group is None:
        raise not_found("consumer group")
    return group


def _only_own_institution(call: Call, letter) -> None:
    """A dead letter names an institution in its data (job events do); other institutions' are not shown."""
    data = letter.event.data if isinstance(letter.event.data, dict) else {}
    owner = data.get("institution_id")
    if owner is not None and owner != call.caller().institution_id:
        raise forbidden("That event belongs to another institution.")


@spec.operation("GET", "/dead-letters", access=ADMIN, query=GroupQuery, response=DeadLetterPage, errors=(404,),
                summary="List dead-lettered events")
async def dead_letters(call: Call) -> DeadLetterPage:
    """A consumer group's dead letters, oldest first: attributes, reason and attempts (not the data)."""
    me = call.caller()
    letters = await call.services.bus.dead_letters(_group(call, call.query.group), call.query.limit)
    shown = [d for d in letters if not isinstance(d.event.data, dict)
             or d.event.data.get("institution_id") in (None, me.institution_id)]
    return DeadLetterPage(group=call.query.group, items=[DeadLetterOut(**bus_admin.describe_dead_letter(d)) for d in shown])


@spec.operation("POST", "/dead-letters/replay", access=ADMIN, body=ReplayIn, response=ReplayOut, status=202,
                errors=(403, 404), summary="Replay a dead-lettered event")
async def replay(call: Call) -> ReplayOut:
    """Publishes the original event again (same id; consumers are idempotent). Audited."""
    me, s = call.caller(), call.services
    letter = await bus_admin.find_dead_letter(s.bus, _group(call, call.body.group), call.body.event_id)
    if letter is None:
        raise not_found("dead letter")
    _only_own_institution(call, letter)
    await bus_admin.replay(s.bus, letter)
    await audit(s, source=SOURCE, action="deadletter.replayed", resource_type="event",
                outcome="success", actor_id=me.user_id, actor_role=me.role, institution_id=me.institution_id,
                resource_id=letter.event["id"], details={"group": call.body.group, "type": letter.event["type"]})
    return ReplayOut(replayed=letter.event["id"], type=letter.event["type"])


class LagOut(ResponseModel):
    group: str
    topic: str
    partition: int
    committed: int
    end: int
    lag: int


class LagPage(ResponseModel):
    items: list[LagOut]
    dead_letters: dict[str, int]


@spec.operation("GET", "/lag", access=ADMIN, response=LagPage, summary="Consumer lag and dead-letter counts")
async def lag(call: Call) -> LagPage:
    """Per consumer group, topic and partition: committed offset, log end and lag; and the
    number of dead letters per group."""
    s, prefix = call.services, call.services.catalogue.namespace
    rows = await bus_admin.lag_report(s.bus, s.catalogue)
    dead = await bus_admin.dead_letter_counts(s.bus, s.catalogue)
    return LagPage(items=[LagOut(**{**vars(r), "group": r.group.removeprefix(prefix)}) for r in rows],
                   dead_letters={g.removeprefix(prefix): n for g, n in dead.items()})


class AlertRuleIn(RequestModel):
    metric: Literal["lag", "dead_letters"]
    consumer_group: str = Field(pattern=r"^[a-z][a-z0-9_]{1,40}$")
    threshold: int = Field(ge=0, le=1_000_000_000)


class AlertOut(ResponseModel):
    metric: str
    consumer_group: str
    threshold: int
    value: int
    crossed: bool


class AlertPage(ResponseModel):
    items: list[AlertOut]


@spec.operation("PUT", "/alerts", access=ADMIN, body=AlertRuleIn, response=AlertPage, errors=(404,),
                summary="Set an alert threshold")
async def set_alert(call: Call) -> AlertPage:
    """Create or replace the threshold on a group's lag or dead-letter count; answers the alerts now."""
    me, s, b = call.caller(), call.services, call.body
    _group(call, b.consumer_group)
    await alerts.set_rule(s.db, me.institution_id, b.metric, b.consumer_group, b.threshold, me.user_id)
    await audit(s, source=SOURCE, action="alert.set", resource_type="alert_rule", outcome="success",
                actor_id=me.user_id, actor_role=me.role, institution_id=me.institution_id,
                details={"metric": b.metric, "group": b.consumer_group, "threshold": b.threshold})
    return await get_alerts(call)


@spec.operation("GET", "/alerts", access=ADMIN, response=AlertPage, summary="Alerts: thresholds and whether crossed")
async def get_alerts(call: Call) -> AlertPage:
    """Each threshold with the value measured now; `crossed` when the value is above it."""
    s = call.services
    found = await alerts.evaluate(s.db, s.bus, s.catalogue, call.caller().institution_id)
    return AlertPage(items=[AlertOut(**a) for a in found])


jobs = entrypoint(spec)
