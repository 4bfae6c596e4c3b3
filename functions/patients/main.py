"""patients: patients, their identifiers and the master patient index; the patient 360 view (HTTP).

Doctors register and read patients of their institution; administrators read and merge.
Use cases: ``medflow.records.patients`` and ``medflow.records.overview``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import Field

from medflow.accounts.schemas import EntityId
from medflow.audit.trail import audit
from medflow.auth.principal import ADMIN, STAFF, Access
from medflow.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from medflow.records import overview, patients as use_cases
from medflow.records.schemas import IdentifierSystem, IdentifierValue, Mrn, Name, Sex
from medflow.runtime.entry import entrypoint
from medflow.runtime.spec import Call, HttpFunction, RequestModel, ResponseModel

spec = HttpFunction("patients", "Patients, identifiers, master patient index, patient 360 view")
SOURCE = "/medflow/patients"
DOCTOR = Access.roles_("doctor")


class IdentifierIn(RequestModel):
    system: IdentifierSystem
    value: IdentifierValue


class PatientIn(RequestModel):
    mrn: Mrn
    display_name: Name
    sex: Sex = "unknown"
    birth_date: date | None = None
    identifiers: list[IdentifierIn] = Field(default_factory=list, max_length=20)
    user_id: EntityId | None = Field(None, description="The patient's own account, to let them see released summaries.")


class IdentifierOut(ResponseModel):
    system: str
    value: str


class PatientOut(ResponseModel):
    id: str
    institution_id: str
    person_id: str
    mrn: str
    display_name: str
    sex: str
    birth_date: date | None
    user_id: str | None
    version: int
    created_at: datetime


class PatientDetail(PatientOut):
    identifiers: list[IdentifierOut]


class PatientQuery(RequestModel):
    name: str | None = Field(None, min_length=1, max_length=200, description="Name prefix.")
    limit: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    cursor: str | None = Field(None, max_length=512)


class PatientPage(ResponseModel):
    items: list[PatientOut]
    next_cursor: str | None


class MergeIn(RequestModel):
    identifier: IdentifierIn = Field(description="An identifier of the person who is the same as this patient.")


class MergeOut(ResponseModel):
    person_id: str
    merged_person_id: str
    identifiers: list[IdentifierOut]


class OverviewQuery(RequestModel):
    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = Field(None, max_length=512)


class OverviewOut(ResponseModel):
    patient: PatientOut
    identifiers: list[IdentifierOut]
    cases: list[dict[str, Any]]
    latest_results: dict[str, dict[str, Any]]
    next_cursor: str | None


def _out(patient: use_cases.Patient) -> PatientOut:
    return PatientOut(**vars(patient))


@spec.operation("POST", "/patients", access=DOCTOR, body=PatientIn, response=PatientDetail, status=201, errors=(409,),
                summary="Register a patient")
async def register_patient(call: Call) -> PatientDetail:
    """A patient of the caller's institution with its MRN; identifiers already known elsewhere
    in the group link them to the same person (409 when they name two different persons)."""
    me, body = call.caller(), call.body
    patient = await use_cases.register_patient(call.services.db, me.institution_id, use_cases.NewPatient(
        mrn=body.mrn, display_name=body.display_name, sex=body.sex, birth_date=body.birth_date,
        identifiers=tuple(use_cases.Identifier(i.system, i.value) for i in body.identifiers), user_id=body.user_id))
    await audit(call.services, source=SOURCE, action="patient.registered",
                resource_type="patient", outcome="success", actor_id=me.user_id, actor_role=me.role,
                institution_id=me.institution_id, resource_id=patient.id)
    return await _detail(call, patient)


async def _detail(call: Call, patient: use_cases.Patient) -> PatientDetail:
    identifiers = await use_cases.identifiers_of(call.services.db, patient.person_id)
    return PatientDetail(**vars(patient), identifiers=[IdentifierOut(**vars(i)) for i in identifiers])


@spec.operation("GET", "/patients", access=STAFF, query=PatientQuery, response=PatientPage, summary="List patients")
async def list_patients(call: Call) -> PatientPage:
    """Patients of the caller's institution by name (prefix filter), keyset-paginated."""
    q = call.query
    items, cursor = await use_cases.list_patients(call.services.db, call.caller().institution_id, q.name, q.limit, q.cursor)
    return PatientPage(items=[_out(p) for p in items], next_cursor=cursor)


@spec.operation("GET", "/patients/{patient_id}", access=STAFF, response=PatientDetail, summary="Read a patient")
async def get_patient(call: Call) -> PatientDetail:
    """One patient with every identifier their person is known under. The read is audited."""
    me = call.caller()
    patient = await use_cases.require_patient(call.services.db, me.institution_id, call.path["patient_id"])
    await audit(call.services, source=SOURCE, action="patient.read", resource_type="patient",
                outcome="success", actor_id=me.user_id, actor_role=me.role, institution_id=me.institution_id,
                resource_id=patient.id)
    return await _detail(call, patient)


@spec.operation("GET", "/patients/{patient_id}/overview", access=STAFF, query=OverviewQuery, response=OverviewOut,
                summary="Patient 360 view")
async def patient_overview(call: Call) -> OverviewOut:
    """Identifiers, exams newest first with their items (paginated), and the latest lab and
    vital-sign results, in one call. The read is audited."""
    me, q = call.caller(), call.query
    view = await overview.patient_overview(call.services.db, me.institution_id, call.path["patient_id"], q.limit, q.cursor)
    await audit(call.services, source=SOURCE, action="patient.overview_read",
                resource_type="patient", outcome="success", actor_id=me.user_id, actor_role=me.role,
                institution_id=me.institution_id, resource_id=view.patient.id)
    return OverviewOut(patient=_out(view.patient), identifiers=[IdentifierOut(**vars(i)) for i in view.identifiers],
                       cases=[_jsonable(c) for c in view.cases],
                       latest_results={k: _jsonable(v) for k, v in view.latest_results.items()},
                       next_cursor=view.next_cursor)


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, (datetime, date)):
            return value.isoformat()
        if isinstance(value, list):
            return [convert(v) for v in value]
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        return value
    return convert(row)


@spec.operation("POST", "/patients/{patient_id}/merge", access=ADMIN, body=MergeIn, response=MergeOut,
                errors=(409,), summary="Merge the person behind an identifier into this patient's person")
async def merge_person(call: Call) -> MergeOut:
    """Master patient index: the two persons are one. Every source identifier is kept and the
    merge is audited."""
    me, body = call.caller(), call.body
    kept, merged, moved = await use_cases.merge_into(call.services.db, me.institution_id, call.path["patient_id"],
                                                     use_cases.Identifier(body.identifier.system, body.identifier.value))
    await audit(call.services, source=SOURCE, action="person.merged", resource_type="person",
                outcome="success", actor_id=me.user_id, actor_role=me.role, institution_id=me.institution_id,
                resource_id=kept, details={"merged_person_id": merged, "identifiers_moved": moved,
                                           "patient_id": call.path["patient_id"]})
    identifiers = await use_cases.identifiers_of(call.services.db, kept)
    return MergeOut(person_id=kept, merged_person_id=merged, identifiers=[IdentifierOut(**vars(i)) for i in identifiers])


patients = entrypoint(spec)
