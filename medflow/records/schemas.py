"""Field rules shared by the records functions' request and response bodies."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StringConstraints

from medflow.accounts.schemas import EntityId
from medflow.runtime.spec import RequestModel, ResponseModel

Code = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9._-]{1,16}$")]
Mrn = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9._/-]{1,64}$")]
IdentifierSystem = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[a-z][A-Za-z0-9:._-]{1,63}$")]
IdentifierValue = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Title = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Sex = Literal["female", "male", "other", "unknown"]
ExamType = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[a-z][a-z0-9_]{1,31}$")]
Modality = Annotated[str, StringConstraints(strip_whitespace=True, to_upper=True, pattern=r"^[A-Z]{2,16}$")]
CaseStatus = Literal["draft", "final", "amended"]
AnnotationStatus = Literal["none", "in_progress", "annotated", "reviewed"]
QualityLabel = Literal["unchecked", "good", "incomplete", "poor"]
ItemKind = Literal["report", "lab_panel", "vitals", "imaging_study"]


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must include a time zone (e.g. 2026-11-21T08:30:00+08:00)")
    return value


AwareDateTime = Annotated[datetime, AfterValidator(_aware)]
Content = Annotated[dict[str, Any], Field(max_length=200)]
Json = dict[str, Any]


class SearchFilters(RequestModel):
    """The filters of a search; each narrows it, any combination."""

    patient_id: EntityId | None = None
    time_from: AwareDateTime | None = Field(None, description="Exams at or after this time (with a zone).")
    time_to: AwareDateTime | None = Field(None, description="Exams before this time (with a zone); after time_from.")
    exam_type: ExamType | None = None
    modality: Modality | None = None
    annotation_status: AnnotationStatus | None = None
    doctor_id: EntityId | None = None
    department_id: EntityId | None = None
    diagnosis_code: Code | None = None
    quality_label: QualityLabel | None = None
    title_contains: str | None = Field(None, min_length=1, max_length=200, description="A substring of the title.")


class VersionEntryOut(ResponseModel):
    version: int
    changed_by: str | None
    changed_at: datetime
    reason: str | None
    old_values: dict[str, Any]


class HistoryOut(ResponseModel):
    items: list[VersionEntryOut]


__all__ = ["Code", "Mrn", "IdentifierSystem", "IdentifierValue", "Name", "Title", "Reason", "Sex", "ExamType",
           "Modality", "CaseStatus", "AnnotationStatus", "QualityLabel", "ItemKind", "AwareDateTime", "Content",
           "Json", "SearchFilters", "VersionEntryOut", "HistoryOut", "date"]
