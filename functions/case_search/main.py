"""case_search: multi-criteria search of the caller's institution's cases, and the
administrators' data-supervision view of the same search (HTTP).

Newest first, keyset pages with an opaque cursor, page size 1–200. Every search is
audited (who searched, with which filters, how many cases came back).
Use case: ``medflow.records.search``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from medflow.audit.trail import audit
from medflow.auth.principal import ADMIN, STAFF
from medflow.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from medflow.records.schemas import SearchFilters
from medflow.records.search import MISSING_FIELDS, CaseFilter, CaseSummary, search_cases
from medflow.runtime.entry import entrypoint
from medflow.records.export import export_cases
from medflow.errors import Problem
from medflow.runtime.spec import Answer, Call, FileAnswer, HttpFunction, RequestModel, ResponseModel

spec = HttpFunction("case_search", "Case search and data supervision")
SOURCE = "/medflow/case_search"

_MISSING = "|".join(MISSING_FIELDS)
MissingList = Annotated[str, StringConstraints(pattern=rf"^({_MISSING})(,({_MISSING}))*$")]


class SearchQuery(SearchFilters):
    limit: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="Page size.")
    cursor: str | None = Field(None, max_length=512, description="Opaque cursor from the previous page.")


class SupervisionQuery(SearchQuery):
    missing: MissingList | None = Field(None, description=f"Comma-separated fields the case lacks: {', '.join(MISSING_FIELDS)}.")
    include_deleted: bool = Field(False, description="Also list soft-deleted cases.")


class CaseSummaryOut(ResponseModel):
    id: str
    patient_id: str
    exam_type: str
    modality: str
    exam_time: datetime
    department_id: str | None
    doctor_id: str | None
    status: str
    annotation_status: str
    quality_label: str
    title: str
    diagnosis_codes: list[str]
    version: int


class CasePage(ResponseModel):
    items: list[CaseSummaryOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


def _filter(call: Call) -> CaseFilter:
    """The query as a filter scoped to the caller's institution."""
    q = call.query
    missing = getattr(q, "missing", None)
    return CaseFilter(
        institution_id=call.caller().institution_id, patient_id=q.patient_id, time_from=q.time_from,
        time_to=q.time_to, exam_type=q.exam_type, modality=q.modality, annotation_status=q.annotation_status,
        doctor_id=q.doctor_id, department_id=q.department_id, diagnosis_code=q.diagnosis_code,
        quality_label=q.quality_label, title_contains=q.title_contains,
        include_deleted=getattr(q, "include_deleted", False),
        missing=frozenset(missing.split(",")) if missing else frozenset())


async def _page(call: Call, action: str) -> CasePage:
    found, next_cursor = await search_cases(call.services.db, _filter(call), call.query.limit, call.query.cursor)
    await _audit(call, action, len(found))
    return CasePage(items=[_out(case) for case in found], next_cursor=next_cursor)


def _out(case: CaseSummary) -> CaseSummaryOut:
    return CaseSummaryOut(**vars(case))


async def _audit(call: Call, action: str, returned: int) -> None:
    me = call.caller()
    used = sorted(name for name, value in call.query.model_dump(exclude={"limit", "cursor"}).items()
                  if value not in (None, False))
    await audit(call.services, source=SOURCE, action=action, resource_type="case",
                outcome="success", actor_id=me.user_id, actor_role=me.role, institution_id=me.institution_id,
                resource_id=call.query.patient_id, details={"filters": used, "returned": returned})


@spec.operation("GET", "/cases", access=STAFF, query=SearchQuery, response=CasePage, summary="Search cases")
async def search(call: Call) -> CasePage:
    """The institution's cases matching every given filter, newest first (exam time, then
    id), one keyset page. Soft-deleted cases are left out."""
    return await _page(call, "case.searched")


@spec.operation("GET", "/supervision", access=ADMIN, query=SupervisionQuery, response=CasePage,
                summary="Data supervision search")
async def supervise(call: Call) -> CasePage:
    """The same search across every doctor, plus missing-field checks (`missing=department,
    doctor,diagnosis,title`) and, on request, soft-deleted cases. Read-only: administrators
    label quality through the cases function and cannot edit clinical content."""
    return await _page(call, "case.supervised")


class ExportQuery(SearchFilters):
    """The search filters, without paging: the export holds every matching case."""


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@spec.operation("GET", "/cases/export", access=STAFF, query=ExportQuery, response=None, produces=XLSX,
                summary="Export a search to Excel")
async def export(call: Call) -> FileAnswer | Answer:
    """Every case matching the filters as an .xlsx workbook, written in constant memory.
    Up to MEDFLOW_EXPORT_MAX_ROWS cases at once; a larger result becomes an export job:
    `202 Accepted` with the job (JSON) and its status URL in `Location`; the finished job's
    result names the package (zip of the workbook + manifest) to download."""
    q, me, s = call.query, call.caller(), call.services
    f = CaseFilter(institution_id=me.institution_id, **q.model_dump())
    used = sorted(k for k, v in q.model_dump().items() if v is not None)
    try:
        path, rows = await export_cases(s.db, f, s.settings.export_max_rows)
    except Problem as problem:
        if problem.code != "export-too-large":
            raise
        from medflow.jobs.model import JobRequest, submit
        job, _ = await submit(s.db, s.bus, s.catalogue, me, JobRequest(
            kind="export", filter=q.model_dump(exclude_none=True), confirm_all=True, options={"format": "xlsx"}),
            idempotency_key=call.headers.get("idempotency-key"), default_deadline_s=s.settings.job_deadline_s,
            max_ids=s.settings.job_max_ids, source=SOURCE)
        return Answer(JobAccepted(id=job["id"], state=job["state"], status_url=f"/api/jobs/jobs/{job['id']}"), 202,
                      {"Location": f"/api/jobs/jobs/{job['id']}"})
    await audit(s, source=SOURCE, action="case.exported", resource_type="case",
                outcome="success", actor_id=me.user_id, actor_role=me.role, institution_id=me.institution_id,
                resource_id=q.patient_id, details={"filters": used, "rows": rows})
    return FileAnswer(path, "cases.xlsx")


class JobAccepted(ResponseModel):
    """A search too large to export at once, now an export job."""
    id: str
    state: str
    status_url: str


case_search = entrypoint(spec)
