"""Storing one DICOM instance: parse (pixels deferred), object first, then rows.

Consistency: the object is written under its UID key
``<institution>/<study UID>/<series UID>/<SOP UID>.dcm`` and only then the instance row is
inserted (one transaction), so a crash leaves at worst an object without a row — never a
row without its object. Re-sending the instance (the idempotent retry) writes the same
key again and inserts the row; ``reconcile`` removes objects that stayed without a row.

Idempotency: the SOP Instance UID is unique per institution; a re-sent instance answers
``duplicate`` and changes nothing. The patient comes from the master patient index: the
DICOM PatientID is the institution's MRN; an unknown one registers a new patient.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from medflow.db.engine import is_unique_violation
from medflow.db.schema import imaging_instances, imaging_series, imaging_studies, imaging_study_modalities, patients
from medflow.dicom.parse import Parsed, Rejected, parse_file
from medflow.errors import Problem
from medflow.ids import new_id, utcnow
from medflow.records.patients import NewPatient, register_patient

if TYPE_CHECKING:
    from medflow.bootstrap import Services

log = logging.getLogger("medflow.imaging")
BUCKET = "dicom"


@dataclass(frozen=True)
class Outcome:
    """What became of one instance of an upload (no patient data: UIDs and codes only)."""

    status: str                     # stored | duplicate | rejected
    sop_instance_uid: str | None = None
    study_uid: str | None = None
    series_uid: str | None = None
    reason: str | None = None       # a stable code when rejected
    detail: str | None = None

    @staticmethod
    def rejected(reason: str, detail: str) -> "Outcome":
        return Outcome("rejected", reason=reason, detail=detail)


def object_key(institution_id: str, p: Parsed) -> str:
    return f"{institution_id}/{p.study_uid}/{p.series_uid}/{p.sop_instance_uid}.dcm"


async def ingest_file(services: "Services", institution_id: str, path: Path, size: int) -> Outcome:
    """Parse, store and index one instance held in a local file; never raises for bad input."""
    if size > services.settings.imaging_max_instance_bytes:
        return Outcome.rejected("too-large", f"An instance may be at most {services.settings.imaging_max_instance_bytes} bytes.")
    try:
        parsed = await asyncio.to_thread(parse_file, path, size)
    except Rejected as exc:
        return Outcome.rejected(exc.reason, exc.detail)
    ids = dict(sop_instance_uid=parsed.sop_instance_uid, study_uid=parsed.study_uid, series_uid=parsed.series_uid)
    if not parsed.patient_id:
        return Outcome("rejected", reason="missing-patient-id", detail="PatientID is missing.", **ids)
    if await _instance_exists(services, institution_id, parsed.sop_instance_uid):
        return Outcome("duplicate", **ids)
    key = object_key(institution_id, parsed)
    with open(path, "rb") as stream:          # object first (streamed from the spool file)
        info = await services.objects.put(BUCKET, key, stream, "application/dicom")
    try:
        study_id, series_id = await _known(services, institution_id, parsed)
        if study_id is None:
            patient_id = await _patient(services, institution_id, parsed)
            study_id = await _study(services, institution_id, patient_id, parsed)
        if series_id is None:
            series_id = await _series(services, institution_id, study_id, parsed)
    except Rejected as exc:
        await services.objects.delete(BUCKET, key)
        return Outcome("rejected", reason=exc.reason, detail=exc.detail, **ids)
    try:
        async with services.db.transaction() as conn:      # then the row
            await conn.execute(imaging_instances.insert().values(
                id=new_id(), institution_id=institution_id, study_id=study_id, series_id=series_id,
                sop_instance_uid=parsed.sop_instance_uid, sop_class_uid=parsed.sop_class_uid,
                instance_number=parsed.instance_number or 0, transfer_syntax_uid=parsed.transfer_syntax_uid,
                rows=parsed.rows, columns=parsed.columns, frames=parsed.frames, object_key=key, size=info.size,
                sha256=info.sha256 or "", header=parsed.header, created_at=utcnow()))
    except sa.exc.IntegrityError as exc:
        if is_unique_violation(exc):            # a concurrent upload of the same instance won
            return Outcome("duplicate", **ids)
        raise
    return Outcome("stored", **ids)


async def _instance_exists(services: "Services", institution_id: str, sop_uid: str) -> bool:
    async with services.db.connect() as conn:
        return (await conn.execute(sa.select(imaging_instances.c.id).where(
            imaging_instances.c.institution_id == institution_id,
            imaging_instances.c.sop_instance_uid == sop_uid))).first() is not None


async def _known(services: "Services", institution_id: str, p: Parsed) -> tuple[str | None, str | None]:
    """(study id, series id) already indexed, in one query (the common case in a batch: both
    known). A study indexed under another patient's MRN is a ``patient-mismatch``."""
    statement = (sa.select(imaging_studies.c.id, patients.c.mrn, imaging_series.c.id.label("series_id"))
                 .select_from(imaging_studies.join(patients, patients.c.id == imaging_studies.c.patient_id)
                              .outerjoin(imaging_series, sa.and_(imaging_series.c.study_id == imaging_studies.c.id,
                                                                 imaging_series.c.series_uid == p.series_uid)))
                 .where(imaging_studies.c.institution_id == institution_id, imaging_studies.c.study_uid == p.study_uid))
    async with services.db.connect() as conn:
        row = (await conn.execute(statement)).first()
    if row is None:
        return None, None
    if row.mrn != p.patient_id:
        raise Rejected("patient-mismatch", "The study is already indexed under another patient.")
    return row.id, row.series_id


async def _patient(services: "Services", institution_id: str, p: Parsed) -> str:
    """The patient the PatientID (the institution's MRN) names; registered when unknown."""
    async def find() -> str | None:
        async with services.db.connect() as conn:
            return (await conn.execute(sa.select(patients.c.id).where(
                patients.c.institution_id == institution_id, patients.c.mrn == p.patient_id,
                patients.c.deleted_at.is_(None)))).scalar()

    found = await find()
    if found:
        return found
    name = (p.patient_name or "").replace("^", " ").strip() or "Unknown"
    try:
        return (await register_patient(services.db, institution_id, NewPatient(
            mrn=p.patient_id or "", display_name=name[:200], sex=p.patient_sex or "unknown", birth_date=p.birth_date))).id
    except Problem as problem:
        if problem.status == 409:               # registered meanwhile by a concurrent upload
            found = await find()
            if found:
                return found
        raise Rejected("patient-conflict", "The patient cannot be linked through the patient index.") from None


async def _get_or_insert(services: "Services", select: sa.Select, insert: sa.Insert) -> tuple[str, bool]:
    """(id, created): the row ``select`` finds, or the one ``insert`` adds; a concurrent
    insert of the same UID is read back instead."""
    for _ in range(3):
        async with services.db.connect() as conn:
            row = (await conn.execute(select)).first()
        if row:
            return row[0], False
        try:
            async with services.db.transaction() as conn:
                await conn.execute(insert)
            return insert.compile().params["id"], True   # the id the insert was built with
        except sa.exc.IntegrityError as exc:
            if not is_unique_violation(exc):
                raise
    raise Rejected("conflict", "The study or series could not be indexed; retry.")


async def _study(services: "Services", institution_id: str, patient_id: str, p: Parsed) -> str:
    select = sa.select(imaging_studies.c.id, imaging_studies.c.patient_id).where(
        imaging_studies.c.institution_id == institution_id, imaging_studies.c.study_uid == p.study_uid)
    async with services.db.connect() as conn:
        row = (await conn.execute(select)).first()
    if row:
        if row.patient_id != patient_id:
            raise Rejected("patient-mismatch", "The study is already indexed under another patient.")
        return row.id
    study_id, _ = await _get_or_insert(services, sa.select(imaging_studies.c.id).where(
        imaging_studies.c.institution_id == institution_id, imaging_studies.c.study_uid == p.study_uid),
        imaging_studies.insert().values(
            id=new_id(), institution_id=institution_id, patient_id=patient_id, study_uid=p.study_uid,
            study_date=p.study_date or date.today(), study_time=p.study_time, accession_number=p.accession_number,
            description=p.study_description, created_at=utcnow()))
    return study_id


async def _series(services: "Services", institution_id: str, study_id: str, p: Parsed) -> str:
    series_id, created = await _get_or_insert(services, sa.select(imaging_series.c.id).where(
        imaging_series.c.institution_id == institution_id, imaging_series.c.series_uid == p.series_uid),
        imaging_series.insert().values(
            id=new_id(), institution_id=institution_id, study_id=study_id, series_uid=p.series_uid,
            modality=p.modality, series_number=p.series_number, description=p.series_description,
            body_part=p.body_part, created_at=utcnow()))
    if created:
        async with services.db.connect() as conn:
            study_date = (await conn.execute(sa.select(imaging_studies.c.study_date)
                                             .where(imaging_studies.c.id == study_id))).scalar_one()
        try:
            async with services.db.transaction() as conn:
                await conn.execute(imaging_study_modalities.insert().values(
                    study_id=study_id, modality=p.modality, institution_id=institution_id, study_date=study_date))
        except sa.exc.IntegrityError as exc:
            if not is_unique_violation(exc):
                raise
    return series_id


async def reconcile(services: "Services", institution_id: str, older_than_s: float = 600, limit: int = 10_000) -> int:
    """Remove objects of the institution's ``dicom`` prefix that have no instance row and are
    older than ``older_than_s`` (an ingestion that died between object and row, never
    retried). Returns how many were removed."""
    now = utcnow()
    removed = 0
    for info in await services.objects.list(BUCKET, prefix=f"{institution_id}/", limit=limit):
        if (now - info.modified_at).total_seconds() < older_than_s:
            continue
        sop_uid = info.key.rsplit("/", 1)[-1].removesuffix(".dcm")
        async with services.db.connect() as conn:
            known = (await conn.execute(sa.select(imaging_instances.c.id).where(
                imaging_instances.c.institution_id == institution_id,
                imaging_instances.c.sop_instance_uid == sop_uid,
                imaging_instances.c.object_key == info.key))).first()
        if known is None and await services.objects.delete(BUCKET, info.key):
            removed += 1
    if removed:
        log.info("orphan imaging objects removed", extra={"institution_id": institution_id, "removed": removed})
    return removed
