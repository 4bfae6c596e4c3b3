"""imaging_search: QIDO-style search of studies, series and instances; instance metadata;
signed retrieval URLs; rendered frames and thumbnails (HTTP).

Staff of the institution only (patients: 403; another institution's UIDs: 404). Reads of a
patient's images — metadata, retrieval, renders — are audited. Use cases:
``medflow.imaging.search``, ``.view``.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import ConfigDict, Field

from medflow.audit.trail import audit
from medflow.auth.principal import STAFF
from medflow.dicom.render import RenderRequest
from medflow.imaging import search as use_cases
from medflow.imaging import view
from medflow.pagination import DEFAULT_PAGE_SIZE
from medflow.runtime.entry import entrypoint
from medflow.runtime.spec import Call, HttpFunction, RequestModel, ResponseModel

spec = HttpFunction("imaging_search", "Imaging search (QIDO-style), metadata, signed retrieval and renders")
SOURCE = "/medflow/imaging_search"
UID = Field(None, min_length=1, max_length=64, pattern=r"^[0-9]+(\.[0-9]+)*$")


class StudyQuery(RequestModel):
    """QIDO-RS attribute names, or their snake_case twins."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, populate_by_name=True)
    patient_id: str | None = Field(None, min_length=26, max_length=26, description="MedFlow patient id")
    mrn: str | None = Field(None, alias="PatientID", min_length=1, max_length=64)
    study_date: str | None = Field(None, alias="StudyDate", max_length=21,
                                   description="YYYYMMDD or a range YYYYMMDD-YYYYMMDD (inclusive)")
    modality: str | None = Field(None, alias="ModalitiesInStudy", pattern=r"^[A-Z]{2,4}$")
    accession_number: str | None = Field(None, alias="AccessionNumber", min_length=1, max_length=16)
    study_description: str | None = Field(None, alias="StudyDescription", min_length=1, max_length=64,
                                          description="substring of the description")
    limit: int = DEFAULT_PAGE_SIZE
    cursor: str | None = Field(None, max_length=200)


class StudyOut(ResponseModel):
    study_uid: str
    patient_id: str
    mrn: str
    patient_name: str
    study_date: date
    study_time: str | None
    accession_number: str | None
    description: str | None
    modalities: list[str]


class StudyPage(ResponseModel):
    items: list[StudyOut]
    next_cursor: str | None


class SeriesOut(ResponseModel):
    series_uid: str
    modality: str
    series_number: int | None
    description: str | None
    body_part: str | None
    instances: int


class SeriesList(ResponseModel):
    items: list[SeriesOut]


class PageQuery(RequestModel):
    limit: int = DEFAULT_PAGE_SIZE
    cursor: str | None = Field(None, max_length=200)


class InstanceOut(ResponseModel):
    sop_instance_uid: str
    sop_class_uid: str
    instance_number: int
    rows: int | None
    columns: int | None
    frames: int
    size: int
    transfer_syntax_uid: str


class InstancePage(ResponseModel):
    items: list[InstanceOut]
    next_cursor: str | None


class InstanceMetadata(InstanceOut):
    header: dict[str, Any] = Field(description="The DICOM JSON model of the header (bulk data left out)")


class SignedUrl(ResponseModel):
    url: str
    expires_in_s: int
    cached: bool | None = None


class RenderQuery(RequestModel):
    frame: int = Field(1, ge=1, le=100_000)
    window_center: float | None = Field(None, ge=-100_000, le=100_000)
    window_width: float | None = Field(None, gt=0, le=200_000)
    size: int | None = Field(None, ge=16, le=2048, description="longest side in pixels (thumbnails)")
    format: Literal["png", "jpeg"] = "png"


async def _audit(call: Call, action: str, instance: dict) -> None:
    me = call.caller()
    await audit(call.services, source=SOURCE, action=action,
                resource_type="imaging_instance", outcome="success", actor_id=me.user_id, actor_role=me.role,
                institution_id=me.institution_id, resource_id=instance["id"],
                details={"patient_id": instance["patient_id"]})


@spec.operation("GET", "/studies", access=STAFF, query=StudyQuery, response=StudyPage, summary="Search studies")
async def search_studies(call: Call) -> StudyPage:
    """By patient (MedFlow id or PatientID), StudyDate (range), ModalitiesInStudy,
    AccessionNumber, StudyDescription (substring); newest first, keyset pages."""
    q = call.query
    date_from, date_to = use_cases.parse_date_range(q.study_date) if q.study_date else (None, None)
    rows, cursor = await use_cases.search_studies(call.services.db, use_cases.StudyFilter(
        institution_id=call.caller().institution_id, patient_id=q.patient_id, mrn=q.mrn, date_from=date_from,
        date_to=date_to, modality=q.modality, accession_number=q.accession_number,
        description_contains=q.study_description), q.limit, q.cursor)
    return StudyPage(items=[StudyOut(**{**{k: r[k] for k in StudyOut.model_fields if k in r},
                                        "patient_name": r["display_name"]}) for r in rows], next_cursor=cursor)


@spec.operation("GET", "/studies/{study_uid}/series", access=STAFF, response=SeriesList, summary="Series of a study")
async def list_series(call: Call) -> SeriesList:
    """Every series of the study with its instance count."""
    rows = await use_cases.series_of(call.services.db, call.caller().institution_id, call.path["study_uid"])
    return SeriesList(items=[SeriesOut(**r) for r in rows])


@spec.operation("GET", "/studies/{study_uid}/series/{series_uid}/instances", access=STAFF, query=PageQuery,
                response=InstancePage, summary="Instances of a series")
async def list_instances(call: Call) -> InstancePage:
    """In instance-number order, keyset pages."""
    rows, cursor = await use_cases.instances_of(call.services.db, call.caller().institution_id, call.path["study_uid"],
                                                call.path["series_uid"], call.query.limit, call.query.cursor)
    return InstancePage(items=[InstanceOut(**{k: r[k] for k in InstanceOut.model_fields}) for r in rows],
                        next_cursor=cursor)


async def _instance(call: Call) -> dict:
    p = call.path
    return await use_cases.require_instance(call.services.db, call.caller().institution_id, p["study_uid"],
                                            p["series_uid"], p["sop_uid"])


INSTANCE = "/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}"


@spec.operation("GET", INSTANCE, access=STAFF, response=InstanceMetadata, summary="An instance's metadata")
async def instance_metadata(call: Call) -> InstanceMetadata:
    """The header as DICOM JSON. The read is audited."""
    row = await _instance(call)
    await _audit(call, "imaging.metadata_read", row)
    return InstanceMetadata(**{k: row[k] for k in InstanceMetadata.model_fields})


@spec.operation("GET", INSTANCE + "/url", access=STAFF, response=SignedUrl, summary="A signed URL of the instance")
async def instance_url(call: Call) -> SignedUrl:
    """The DICOM file through a signed URL that expires after MEDFLOW_SIGNED_URL_TTL_S seconds
    (5 minutes by default). The retrieval is audited."""
    row = await _instance(call)
    url = await view.original_url(call.services, row)
    await _audit(call, "imaging.retrieved", row)
    return SignedUrl(url=url, expires_in_s=call.services.settings.signed_url_ttl_s)


@spec.operation("GET", INSTANCE + "/rendered", access=STAFF, query=RenderQuery, response=SignedUrl,
                errors=(422,), summary="A rendered frame (PNG/JPEG) through a signed URL")
async def rendered(call: Call) -> SignedUrl:
    """Window centre/width from the request or the header, rescale slope/intercept, MONOCHROME1
    inverted, a frame of a multi-frame instance, ``size`` for thumbnails; renders are cached
    in the object store. The view is audited."""
    row = await _instance(call)
    q = call.query
    url, cached = await view.rendered_url(call.services, row, RenderRequest(
        frame=q.frame, window_center=q.window_center, window_width=q.window_width, size=q.size, format=q.format))
    await _audit(call, "imaging.rendered", row)
    return SignedUrl(url=url, expires_in_s=call.services.settings.signed_url_ttl_s, cached=cached)


imaging_search = entrypoint(spec)
