"""my_records: what a patient may see of their own records — only the summaries a doctor
released to them (HTTP). Use cases: ``medflow.records.overview``, ``.patients``.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from medflow.audit.trail import audit
from medflow.auth.principal import Access
from medflow.cache.aside import cache_aside
from medflow.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from medflow.records.overview import released_summaries
from medflow.records.patients import patient_of_user
from medflow.runtime.entry import entrypoint
from medflow.runtime.spec import Call, HttpFunction, RequestModel, ResponseModel

spec = HttpFunction("my_records", "A patient's released summaries")
PATIENT = Access.roles_("patient")


class PageQuery(RequestModel):
    limit: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    cursor: str | None = Field(None, max_length=512)


class ReleasedCase(ResponseModel):
    id: str
    exam_type: str
    modality: str
    exam_time: datetime
    title: str
    released_summary: str
    released_at: datetime


class ReleasedPage(ResponseModel):
    items: list[ReleasedCase]
    next_cursor: str | None


@spec.operation("GET", "/cases", access=PATIENT, query=PageQuery, response=ReleasedPage, summary="Your released results")
async def my_cases(call: Call) -> ReleasedPage:
    """Newest first; only cases a doctor released, and of them only the released summary.
    Empty until your account is linked to your patient record."""
    me, q = call.caller(), call.query
    patient = await patient_of_user(call.services.db, me.institution_id, me.user_id)
    if patient is None:
        return ReleasedPage(items=[], next_cursor=None)
    rows, cursor = await released_summaries(call.services.db, cache_aside(call.services), me.institution_id, patient.id,
                                            q.limit, q.cursor)
    await audit(call.services, source="/medflow/my_records", action="patient.self_read",
                resource_type="patient", outcome="success", actor_id=me.user_id, actor_role=me.role,
                institution_id=me.institution_id, resource_id=patient.id)
    return ReleasedPage(items=[ReleasedCase(**r) for r in rows], next_cursor=cursor)


my_records = entrypoint(spec)
