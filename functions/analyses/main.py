"""analyses: doctors submit exam items to the five diagnostic models, follow the tasks (poll
or server-sent events), and review the results: accept findings into the record, edit,
reject, or re-run (HTTP).

Submitting answers ``202 Accepted`` with the task and its status URL; the ``analysis_worker``
CloudEvent function calls the model. Doctors submit and review; administrators may read.
Submissions, reads of results and review decisions are audited. Use cases:
``medflow.analysis``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from medflow.accounts.schemas import EntityId
from medflow.analysis import progress, review as reviewing, tasks as use_cases
from medflow.analysis.models import MODELS
from medflow.audit.trail import audit
from medflow.auth.principal import STAFF, Access
from medflow.bus.outbox import GRACE_S, sweep
from medflow.ids import utcnow
from medflow.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from medflow.runtime.entry import entrypoint
from medflow.runtime.spec import Answer, Call, EventStream, HttpFunction, RequestModel, ResponseModel

spec = HttpFunction("analyses", "Analyses: model runs on exam items, progress and doctor review")
SOURCE = use_cases.SOURCE
DOCTOR = Access.roles_("doctor")
REVIEW_ACTIONS = {"accept": "analysis.accepted", "edit": "analysis.edited", "reject": "analysis.rejected"}
MODEL_NAMES = Literal["chest_xray_diagnosis", "chest_xray_report", "echo", "urinalysis", "tongue"]


class AnalysisIn(RequestModel):
    case_id: EntityId
    item_id: EntityId = Field(description="The exam item (case item) to analyse: an imaging study or a lab panel.")
    model: MODEL_NAMES
    model_version: str | None = Field(None, max_length=16, description="Default: the version served.")
    parameters: dict[str, Any] | None = Field(None, description=(
        "chest_xray_diagnosis: {indication}; tongue: {description, attributes: {red_body, pale_body, yellow_coating, "
        "white_coating, thick_coating, cracks, teeth_marks, dry} each 0-1}; others: none."))


class ReviewOut(ResponseModel):
    id: str
    decision: str
    finding_keys: list[str] | None
    edits: dict[str, Any] | None
    reason: str | None
    written: dict[str, Any] | None
    reviewer_id: str
    created_at: datetime


class AnalysisOut(ResponseModel):
    id: str
    case_id: str
    item_id: str
    model: str
    model_version: str
    run: int
    state: str = Field(description="queued | running | succeeded | failed")
    attempts: int
    error_code: str | None = Field(description=(
        "On failure: model-unavailable, model-rejected-input, invalid-model-output, input-gone, too-many-attempts, stuck. "
        "While queued again after a transient failure: the last one."))
    error: str | None
    result: dict[str, Any] | None = Field(description=(
        "model, model_version, engine, weights, not_for_clinical_use, disclaimer, probabilities (per label), "
        "findings [{key, kind, label, probability, confidence, detection_score, text, value, unit, box, contour}], report, "
        "ejection_fraction, syndrome, attributes: as the model gave them, never changed by a review."))
    timings: dict[str, float] | None = Field(description="queue_ms, model_call_ms, model_queue_ms, model_infer_ms, total_ms")
    review_state: str = Field(description="pending | partially_accepted | accepted | rejected | rerun")
    requested_by: str
    rerun_of: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    status_url: str
    events_url: str
    reviews: list[ReviewOut] | None = None


class AnalysisPage(ResponseModel):
    items: list[AnalysisOut]
    next_cursor: str | None


class ListQuery(RequestModel):
    case_id: EntityId | None = None
    mine: bool = Field(False, description="Only the analyses I submitted.")
    state: Literal["queued", "running", "succeeded", "failed"] | None = None
    limit: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    cursor: str | None = Field(None, max_length=512)


class ReviewIn(RequestModel):
    decision: Literal["accept", "edit", "reject", "rerun"]
    finding_keys: list[str] | None = Field(None, max_length=200, description="accept/edit: which findings (default: all).")
    edits: dict[str, dict[str, Any]] | None = Field(None, description="edit: finding key -> {label, text, value, box, contour}.")
    report: str | None = Field(None, min_length=1, max_length=20_000, description="edit: the report text as corrected.")
    reason: str | None = Field(None, max_length=500)


class ReviewResult(ResponseModel):
    analysis: AnalysisOut
    review: ReviewOut | None
    rerun: AnalysisOut | None = None


class ModelOut(ResponseModel):
    name: str
    version: str
    reads: str
    modalities: list[str]
    summary: str


class ModelList(ResponseModel):
    items: list[ModelOut]


def status_url(task_id: str) -> str:
    return f"/api/analyses/analyses/{task_id}"


def review_out(r: dict[str, Any]) -> ReviewOut:
    return ReviewOut(**{k: r[k] for k in ReviewOut.model_fields})


def analysis_out(t: dict[str, Any], reviews: list[dict[str, Any]] | None = None) -> AnalysisOut:
    return AnalysisOut(**{k: t.get(k) for k in AnalysisOut.model_fields if k not in ("status_url", "events_url", "reviews")},
                       status_url=status_url(t["id"]), events_url=status_url(t["id"]) + "/events",
                       reviews=[review_out(r) for r in reviews] if reviews is not None else None)


async def _audit(call: Call, action: str, task: dict[str, Any], details: dict | None = None) -> None:
    me = call.caller()
    await audit(call.services, source=SOURCE, action=action, resource_type="analysis",
                outcome="success", actor_id=me.user_id, actor_role=me.role, institution_id=me.institution_id,
                resource_id=task["id"], details={"case_id": task["case_id"], "model": task["model"], **(details or {})})


@spec.operation("GET", "/models", access=STAFF, response=ModelList, summary="The diagnostic models and what they read")
async def models(call: Call) -> ModelList:
    return ModelList(items=[ModelOut(name=m.name, version=m.version, reads=m.item_kind, modalities=list(m.modalities),
                                     summary=m.summary) for m in MODELS.values()])


@spec.operation("POST", "/analyses", access=DOCTOR, body=AnalysisIn, response=AnalysisOut, status=202,
                errors=(403, 404, 409, 422), summary="Submit an exam item to a model")
async def submit(call: Call) -> Answer:
    """Answered at once with `202 Accepted`, the task and its status URL (`Location`). The same
    input and model submitted again (by anyone of the institution) answers the same task; an
    `Idempotency-Key` reused for another input is 409 `idempotency-key-reused`. 404 for a case
    or item not of your institution; 422 for an item the model cannot read (`wrong-input-for-model`,
    `wrong-modality`, `wrong-panel`, `too-few-frames`, `study-not-stored`) or bad parameters."""
    b, s = call.body, call.services
    key = call.headers.get("idempotency-key")
    use_cases.bad_key(key)
    task, created = await use_cases.submit(s.db, s.bus, call.caller(), use_cases.Submission(
        case_id=b.case_id, item_id=b.item_id, model=b.model, model_version=b.model_version, parameters=b.parameters),
        idempotency_key=key)
    if created:
        await _audit(call, "analysis.submitted", task)
    return Answer(analysis_out(task), 202, {"Location": status_url(task["id"])})


@spec.operation("GET", "/analyses", access=STAFF, query=ListQuery, response=AnalysisPage, summary="List analyses")
async def list_analyses(call: Call) -> AnalysisPage:
    """Newest first, by case or your own; keyset pages. Results are left out: read one analysis for its result."""
    q, me = call.query, call.caller()
    found, cursor = await use_cases.list_tasks(call.services.db, me.institution_id, case_id=q.case_id,
                                               mine_of=me.user_id if q.mine else None, state=q.state,
                                               limit=q.limit, cursor=q.cursor)
    return AnalysisPage(items=[analysis_out({**t, "result": None}) for t in found], next_cursor=cursor)


@spec.operation("GET", "/analyses/{task_id}", access=STAFF, response=AnalysisOut, errors=(404,),
                summary="An analysis: state, result and reviews")
async def status(call: Call) -> AnalysisOut:
    """Poll this, or follow `events_url`. The read of a result is audited."""
    s, me = call.services, call.caller()
    task = await use_cases.get(s.db, me.institution_id, call.path["task_id"])
    if task["state"] == "queued" and (utcnow() - task["updated_at"]).total_seconds() > GRACE_S:
        await sweep(s.db, s.bus, older_than_s=GRACE_S)   # its event's publish was lost: send it now
    reviews = await reviewing.reviews_of(s.db, me.institution_id, task["id"])
    if task["result"] is not None:
        await _audit(call, "analysis.read", task)
    return analysis_out(task, reviews)


@spec.operation("GET", "/analyses/{task_id}/events", access=STAFF, response=None, produces="text/event-stream",
                errors=(404,), summary="Follow an analysis (server-sent events)")
async def events(call: Call) -> EventStream:
    """A `status` event with the task (without its result) now and on every change, a
    keep-alive comment every 5 s in between; the stream ends after `succeeded` or `failed`
    (then read the result), or after ten minutes (reconnect)."""
    s, me = call.services, call.caller()
    task_id = (await use_cases.get(s.db, me.institution_id, call.path["task_id"]))["id"]

    async def stream():
        async for task in progress.follow(s.progress, task_id, lambda: use_cases.get(s.db, me.institution_id, task_id)):
            if task is None:
                yield None, None      # keep-alive while nothing changes
            else:
                yield "status", analysis_out({**task, "result": None}).model_dump(mode="json")

    return EventStream(stream())


@spec.operation("POST", "/analyses/{task_id}/reviews", access=STAFF, body=ReviewIn, response=ReviewResult,
                errors=(403, 404, 409, 422), summary="Review an analysis: accept, edit, reject or re-run")
async def review(call: Call) -> ReviewResult | Answer:
    """`accept` puts the findings named (default: all) into the record as annotations of the
    exam item (and, for the report generator, a report item); `edit` does so with your
    corrections; `reject` closes the review; `rerun` answers `202` with a new task for the same
    input. The model's output is kept unchanged; each decision is stored and audited. Only
    doctors review (403); 409 when the analysis has not succeeded or is already decided."""
    b, s, me = call.body, call.services, call.caller()
    if b.decision == "rerun":
        new = await use_cases.rerun(s.db, s.bus, me, call.path["task_id"], b.reason)
        old = await use_cases.get(s.db, me.institution_id, call.path["task_id"])
        await _audit(call, "analysis.rerun", old, {"rerun_task_id": new["id"]})
        return Answer(ReviewResult(analysis=analysis_out(old), review=None, rerun=analysis_out(new)), 202,
                      {"Location": status_url(new["id"])})
    task, row = await reviewing.review(s.db, me, call.path["task_id"], reviewing.Decision(
        decision=b.decision, finding_keys=b.finding_keys, edits=b.edits or {}, report=b.report, reason=b.reason))
    await _audit(call, REVIEW_ACTIONS[b.decision], task, {"findings": len(row["finding_keys"] or []), "review_id": row["id"]})
    return ReviewResult(analysis=analysis_out(task), review=review_out(row))


analyses = entrypoint(spec)
