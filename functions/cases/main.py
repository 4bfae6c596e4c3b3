"""cases: exams/cases, their items (reports, lab panels, vital signs, imaging links),
versioned edits with history, annotations, release to the patient, quality labels (HTTP).

Doctors create and edit clinical content; administrators read and set data-quality labels
but cannot edit clinical content. Every read of a case is audited.
Use cases: ``medflow.records.cases``, ``.annotations``, ``.items``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from medflow.accounts.schemas import EntityId
from medflow.audit.trail import audit
from medflow.auth.principal import ADMIN, STAFF, Access
from medflow.cache.aside import cache_aside
from medflow.ids import utcnow
from medflow.records import annotations as notes
from medflow.records import cases as use_cases
from medflow.records.items import validated_content
from medflow.records.schemas import (AnnotationStatus, AwareDateTime, CaseStatus, Code, Content, ExamType, HistoryOut,
                                     ItemKind, Modality, QualityLabel, Reason, Title, VersionEntryOut)
from medflow.records.versions import VersionEntry
from medflow.runtime.entry import entrypoint
from medflow.runtime.spec import Call, HttpFunction, RequestModel, ResponseModel

spec = HttpFunction("cases", "Cases, items, history, annotations, release and quality labels")
SOURCE = "/medflow/cases"
DOCTOR = Access.roles_("doctor")


class CaseIn(RequestModel):
    patient_id: EntityId
    exam_type: ExamType
    modality: Modality
    exam_time: AwareDateTime
    title: Title = ""
    department_id: EntityId | None = None
    doctor_id: EntityId | None = None
    status: CaseStatus = "draft"
    diagnosis_codes: list[Code] = Field(default_factory=list, max_length=50)


class CaseChange(RequestModel):
    version: int = Field(ge=1, description="The version you read; 409 if it changed meanwhile.")
    reason: Reason | None = None
    exam_type: ExamType | None = None
    modality: Modality | None = None
    exam_time: AwareDateTime | None = None
    title: Title | None = None
    department_id: EntityId | None = None
    doctor_id: EntityId | None = None
    status: CaseStatus | None = None
    annotation_status: AnnotationStatus | None = None
    diagnosis_codes: list[Code] | None = Field(None, max_length=50)


class RemoveQuery(RequestModel):
    version: int = Field(ge=1)
    reason: Reason | None = None


class ItemOut(ResponseModel):
    id: str
    case_id: str
    kind: str
    title: str
    content: dict[str, Any]
    version: int
    created_by: str | None
    created_at: datetime
    updated_at: datetime


class CaseOut(ResponseModel):
    id: str
    institution_id: str
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
    released_summary: str | None
    released_at: datetime | None
    version: int
    created_by: str | None
    created_at: datetime
    updated_at: datetime


class CaseDetail(CaseOut):
    items: list[ItemOut]


class CaseVersionOut(ResponseModel):
    version: int
    values: dict[str, Any]


class ItemIn(RequestModel):
    kind: ItemKind
    title: Title = ""
    content: Content


class ItemChange(RequestModel):
    version: int = Field(ge=1)
    reason: Reason | None = None
    title: Title | None = None
    content: Content | None = None


class AnnotationIn(RequestModel):
    kind: str = Field(pattern=r"^(label|region)$")
    label: str = Field(min_length=1, max_length=100)
    item_id: EntityId | None = None
    shape: str | None = Field(None, pattern=r"^(rect|polygon|point|ellipse)$")
    coordinates: list[list[float]] | None = Field(None, min_length=1, max_length=1000)
    status: str = Field("draft", pattern=r"^(draft|submitted)$")


class AnnotationChange(RequestModel):
    version: int = Field(ge=1)
    reason: Reason | None = None
    label: str | None = Field(None, min_length=1, max_length=100)
    coordinates: list[list[float]] | None = Field(None, min_length=1, max_length=1000)
    status: str | None = Field(None, pattern=r"^(draft|submitted|reviewed|rejected)$")


class AnnotationOut(ResponseModel):
    id: str
    case_id: str
    item_id: str | None
    kind: str
    label: str
    shape: str | None
    coordinates: list[list[float]] | None
    status: str
    author_id: str
    version: int
    created_at: datetime
    updated_at: datetime


class AnnotationList(ResponseModel):
    items: list[AnnotationOut]


class ReleaseIn(RequestModel):
    version: int = Field(ge=1)
    summary: str = Field(min_length=1, max_length=20_000, description="What the patient will read.")


class QualityIn(RequestModel):
    version: int = Field(ge=1)
    label: QualityLabel
    reason: Reason | None = None


def _case(row: dict[str, Any]) -> CaseOut:
    return CaseOut(**{**{k: row[k] for k in CaseOut.model_fields}, "diagnosis_codes": row["diagnosis_codes"] or []})


def _item(row: dict[str, Any]) -> ItemOut:
    return ItemOut(**{k: row[k] for k in ItemOut.model_fields})


def _history(entries: list[VersionEntry]) -> HistoryOut:
    return HistoryOut(items=[VersionEntryOut(**vars(e)) for e in entries])


async def _audit(call: Call, action: str, case_id: str, details: dict | None = None) -> None:
    me = call.caller()
    await audit(call.services, source=SOURCE, action=action, resource_type="case",
                outcome="success", actor_id=me.user_id, actor_role=me.role, institution_id=me.institution_id,
                resource_id=case_id, details=details)


async def _detail(call: Call, case_id: str) -> CaseDetail:
    me = call.caller()
    row = await use_cases.require_case(call.services.db, me.institution_id, case_id)
    items = await use_cases.items_of(call.services.db, me.institution_id, [case_id])
    return CaseDetail(**_case(row).model_dump(), items=[_item(i) for i in items[case_id]])


@spec.operation("POST", "/cases", access=DOCTOR, body=CaseIn, response=CaseDetail, status=201, summary="Create a case")
async def create_case(call: Call) -> CaseDetail:
    """A case (exam) of a patient of the caller's institution."""
    me, b = call.caller(), call.body
    row = await use_cases.create_case(call.services.db, me.institution_id, use_cases.NewCase(
        patient_id=b.patient_id, exam_type=b.exam_type, modality=b.modality, exam_time=b.exam_time, title=b.title,
        department_id=b.department_id, doctor_id=b.doctor_id, status=b.status,
        diagnosis_codes=tuple(b.diagnosis_codes)), me.user_id)
    await _audit(call, "case.created", row["id"])
    return await _detail(call, row["id"])


@spec.operation("GET", "/cases/{case_id}", access=STAFF, response=CaseDetail, summary="Read a case")
async def get_case(call: Call) -> CaseDetail:
    """A case with its items. The read is audited."""
    detail = await _detail(call, call.path["case_id"])
    await _audit(call, "case.read", detail.id)
    return detail


@spec.operation("PATCH", "/cases/{case_id}", access=DOCTOR, body=CaseChange, response=CaseDetail, errors=(409,),
                summary="Edit a case")
async def update_case(call: Call) -> CaseDetail:
    """A versioned edit: send the version you read and why; the old values are kept."""
    me, b = call.caller(), call.body
    changes = b.model_dump(exclude_unset=True, exclude={"version", "reason"})
    await use_cases.update_case(call.services.db, cache_aside(call.services), me.institution_id, call.path["case_id"],
                                changes, expected_version=b.version, actor_id=me.user_id, reason=b.reason)
    await _audit(call, "case.updated", call.path["case_id"], {"fields": sorted(changes)})
    return await _detail(call, call.path["case_id"])


@spec.operation("DELETE", "/cases/{case_id}", access=DOCTOR, query=RemoveQuery, response=None, status=204,
                errors=(409,), summary="Delete a case (soft)")
async def delete_case(call: Call) -> None:
    """Soft delete: the case leaves searches and views; its history stays."""
    me, q = call.caller(), call.query
    await use_cases.delete_case(call.services.db, cache_aside(call.services), me.institution_id, call.path["case_id"],
                                expected_version=q.version, actor_id=me.user_id, reason=q.reason)
    await _audit(call, "case.deleted", call.path["case_id"])


@spec.operation("GET", "/cases/{case_id}/history", access=STAFF, response=HistoryOut, summary="A case's history")
async def case_history(call: Call) -> HistoryOut:
    """Every earlier version: who changed it, when, why, and the old values."""
    return _history(await use_cases.case_history(call.services.db, call.caller().institution_id, call.path["case_id"]))


@spec.operation("GET", "/cases/{case_id}/versions/{version:int}", access=STAFF, response=CaseVersionOut,
                summary="Read one version of a case")
async def case_version(call: Call) -> CaseVersionOut:
    """The case as it was at that version."""
    version = int(call.path["version"])
    values = await use_cases.case_version(call.services.db, call.caller().institution_id, call.path["case_id"], version)
    return CaseVersionOut(version=version, values={k: v for k, v in values.items() if k != "version"})


@spec.operation("POST", "/cases/{case_id}/items", access=DOCTOR, body=ItemIn, response=ItemOut, status=201,
                summary="Attach an item")
async def add_item(call: Call) -> ItemOut:
    """A report, laboratory panel (values with units and reference ranges), vital signs or a
    link to an imaging study; content is checked against its kind."""
    me, b = call.caller(), call.body
    row = await use_cases.add_item(call.services.db, me.institution_id, call.path["case_id"], b.kind, b.title,
                                   validated_content(b.kind, b.content), me.user_id)
    await _audit(call, "case.item_added", call.path["case_id"], {"item_id": row["id"], "kind": b.kind})
    return _item(row)


@spec.operation("PATCH", "/cases/{case_id}/items/{item_id}", access=DOCTOR, body=ItemChange, response=ItemOut,
                errors=(409,), summary="Edit an item")
async def update_item(call: Call) -> ItemOut:
    """A versioned edit of an item's title or content."""
    me, b = call.caller(), call.body
    current = await use_cases.require_item(call.services.db, me.institution_id, call.path["case_id"], call.path["item_id"])
    changes = b.model_dump(exclude_unset=True, exclude={"version", "reason"})
    if "content" in changes:
        changes["content"] = validated_content(current["kind"], changes["content"])
    row = await use_cases.update_item(call.services.db, me.institution_id, call.path["case_id"], call.path["item_id"],
                                      changes, expected_version=b.version, actor_id=me.user_id, reason=b.reason)
    await _audit(call, "case.item_updated", call.path["case_id"], {"item_id": row["id"]})
    return _item(row)


@spec.operation("DELETE", "/cases/{case_id}/items/{item_id}", access=DOCTOR, query=RemoveQuery, response=None,
                status=204, errors=(409,), summary="Delete an item (soft)")
async def delete_item(call: Call) -> None:
    """Soft delete, kept in the item's history."""
    me, q = call.caller(), call.query
    await use_cases.delete_item(call.services.db, me.institution_id, call.path["case_id"], call.path["item_id"],
                                expected_version=q.version, actor_id=me.user_id, reason=q.reason)
    await _audit(call, "case.item_deleted", call.path["case_id"], {"item_id": call.path["item_id"]})


@spec.operation("GET", "/cases/{case_id}/items/{item_id}/history", access=STAFF, response=HistoryOut,
                summary="An item's history")
async def item_history(call: Call) -> HistoryOut:
    """Every earlier version of an item."""
    return _history(await use_cases.item_history(call.services.db, call.caller().institution_id, call.path["case_id"],
                                                 call.path["item_id"]))


def _annotation(row: dict[str, Any]) -> AnnotationOut:
    return AnnotationOut(**{k: row[k] for k in AnnotationOut.model_fields})


@spec.operation("POST", "/cases/{case_id}/annotations", access=DOCTOR, body=AnnotationIn, response=AnnotationOut,
                status=201, summary="Annotate a case or an image")
async def annotate(call: Call) -> AnnotationOut:
    """A label on the case, or a region (shape and coordinates) on an image item."""
    me, b = call.caller(), call.body
    row = await notes.annotate(call.services.db, me.institution_id, call.path["case_id"], notes.NewAnnotation(
        kind=b.kind, label=b.label, item_id=b.item_id, shape=b.shape, coordinates=b.coordinates, status=b.status),
        me.user_id)
    await _audit(call, "case.annotated", call.path["case_id"], {"annotation_id": row["id"], "kind": b.kind})
    return _annotation(row)


@spec.operation("GET", "/cases/{case_id}/annotations", access=STAFF, response=AnnotationList, summary="List annotations")
async def list_annotations(call: Call) -> AnnotationList:
    """The case's live annotations."""
    rows = await notes.list_annotations(call.services.db, call.caller().institution_id, call.path["case_id"])
    return AnnotationList(items=[_annotation(r) for r in rows])


@spec.operation("PATCH", "/cases/{case_id}/annotations/{annotation_id}", access=DOCTOR, body=AnnotationChange,
                response=AnnotationOut, errors=(409,), summary="Edit or review an annotation")
async def update_annotation(call: Call) -> AnnotationOut:
    """A versioned change of label, coordinates or status (submitted, reviewed, rejected)."""
    me, b = call.caller(), call.body
    changes = b.model_dump(exclude_unset=True, exclude={"version", "reason"})
    row = await notes.update_annotation(call.services.db, me.institution_id, call.path["case_id"],
                                        call.path["annotation_id"], changes, expected_version=b.version,
                                        actor_id=me.user_id, reason=b.reason)
    await _audit(call, "case.annotation_updated", call.path["case_id"], {"annotation_id": row["id"]})
    return _annotation(row)


@spec.operation("GET", "/cases/{case_id}/annotations/{annotation_id}/history", access=STAFF, response=HistoryOut,
                summary="An annotation's history")
async def annotation_history(call: Call) -> HistoryOut:
    """Every earlier version of an annotation."""
    return _history(await notes.annotation_history(call.services.db, call.caller().institution_id,
                                                   call.path["case_id"], call.path["annotation_id"]))


@spec.operation("POST", "/cases/{case_id}/release", access=DOCTOR, body=ReleaseIn, response=CaseDetail, errors=(409,),
                summary="Release a summary to the patient")
async def release(call: Call) -> CaseDetail:
    """The patient sees this summary (and nothing else of the case) in their records."""
    me, b = call.caller(), call.body
    await use_cases.update_case(call.services.db, cache_aside(call.services), me.institution_id, call.path["case_id"],
                                {"released_summary": b.summary, "released_at": utcnow()}, expected_version=b.version,
                                actor_id=me.user_id, reason="released to patient")
    await _audit(call, "case.released", call.path["case_id"])
    return await _detail(call, call.path["case_id"])


@spec.operation("PUT", "/cases/{case_id}/quality", access=ADMIN, body=QualityIn, response=CaseDetail, errors=(409,),
                summary="Set the data-quality label")
async def set_quality(call: Call) -> CaseDetail:
    """Data supervision: administrators label quality; they cannot edit clinical content."""
    me, b = call.caller(), call.body
    await use_cases.update_case(call.services.db, cache_aside(call.services), me.institution_id, call.path["case_id"],
                                {"quality_label": b.label}, expected_version=b.version, actor_id=me.user_id,
                                reason=b.reason)
    await _audit(call, "case.quality_labelled", call.path["case_id"], {"label": b.label})
    return await _detail(call, call.path["case_id"])


cases = entrypoint(spec)
