"""QIDO-style search: studies by patient, date range, modality, accession number and
description; series of a study; instances of a series. Keyset pages, never OFFSET.

Studies come newest first, ordered by ``(study_date DESC, id DESC)``. As in
``medflow.records.search``, one composite index drives a search — the one of its most
selective equality filter: ``(institution_id, patient_id, study_date, id)``,
``(institution_id, accession_number, study_date, id)``, the modality table's
``(institution_id, modality, study_date, study_id)``, else ``(institution_id, study_date,
id)`` — named with ``FORCE INDEX`` on MySQL-family engines; the date range narrows that
index's range and the other filters are checked on the rows read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa

from medflow.db.engine import Database
from medflow.db.schema import (imaging_instances, imaging_series, imaging_studies, imaging_study_modalities, patients)
from medflow.errors import FieldError, bad_request, not_found, validation_failed
from medflow.pagination import MAX_PAGE_SIZE, decode_cursor, encode_cursor
from medflow.records.search import _index_name

_HINT_DIALECTS = ("mysql", "mariadb")
TIME_INDEX = _index_name(imaging_studies, "institution_id", "study_date", "id")
PATIENT_INDEX = _index_name(imaging_studies, "institution_id", "patient_id", "study_date", "id")
ACCESSION_INDEX = _index_name(imaging_studies, "institution_id", "accession_number", "study_date", "id")
MODALITY_INDEX = _index_name(imaging_study_modalities, "institution_id", "modality", "study_date", "study_id")


@dataclass(frozen=True)
class StudyFilter:
    institution_id: str
    patient_id: str | None = None
    mrn: str | None = None                 # DICOM PatientID
    date_from: date | None = None          # inclusive, as DICOM ranges are
    date_to: date | None = None
    modality: str | None = None
    accession_number: str | None = None
    description_contains: str | None = None


def parse_date_range(value: str) -> tuple[date | None, date | None]:
    """A DICOM date or range: ``YYYYMMDD``, ``YYYYMMDD-YYYYMMDD``, ``-YYYYMMDD``, ``YYYYMMDD-``."""
    def one(text: str) -> date | None:
        text = text.strip().replace("-", "") if len(text.strip()) == 10 else text.strip()
        if not text:
            return None
        if len(text) != 8 or not text.isdigit():
            raise ValueError
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))

    try:
        if "-" in value and len(value) != 10:
            low, _, high = value.partition("-")
            result = one(low), one(high)
        else:
            single = one(value)
            result = single, single
    except ValueError:
        raise validation_failed([FieldError("query.StudyDate", "must be YYYYMMDD or YYYYMMDD-YYYYMMDD", "date")]) from None
    if result[0] and result[1] and result[0] > result[1]:
        raise validation_failed([FieldError("query.StudyDate", "the range is reversed", "reversed_range")])
    return result


def _driver(f: StudyFilter) -> str:
    if f.patient_id or f.mrn:
        return PATIENT_INDEX
    if f.accession_number:
        return ACCESSION_INDEX
    if f.modality:
        return MODALITY_INDEX
    return TIME_INDEX


STUDY_COLUMNS = (imaging_studies.c.id, imaging_studies.c.study_uid, imaging_studies.c.patient_id,
                 imaging_studies.c.study_date, imaging_studies.c.study_time, imaging_studies.c.accession_number,
                 imaging_studies.c.description)


def study_statement(f: StudyFilter, limit: int, after: tuple[date, str] | None) -> sa.Select:
    index = _driver(f)
    by_modality = index == MODALITY_INDEX
    driver = imaging_study_modalities if by_modality else imaging_studies
    sort_date = imaging_study_modalities.c.study_date if by_modality else imaging_studies.c.study_date
    sort_id = imaging_study_modalities.c.study_id if by_modality else imaging_studies.c.id
    source = (imaging_study_modalities.join(imaging_studies, imaging_studies.c.id == imaging_study_modalities.c.study_id)
              if by_modality else imaging_studies)
    listed = imaging_study_modalities.alias("listed")
    modalities = (sa.select(sa.func.group_concat(listed.c.modality)).where(listed.c.study_id == imaging_studies.c.id)
                  .correlate(imaging_studies).scalar_subquery().label("modality_list"))      # a primary-key range per row, same round trip
    statement = sa.select(*STUDY_COLUMNS, patients.c.mrn, patients.c.display_name, modalities).select_from(
        source.join(patients, patients.c.id == imaging_studies.c.patient_id))
    for dialect in _HINT_DIALECTS:
        statement = statement.with_hint(driver, f"FORCE INDEX ({index})", dialect)
    where = [driver.c.institution_id == f.institution_id, imaging_studies.c.institution_id == f.institution_id]
    if by_modality:
        where.append(imaging_study_modalities.c.modality == f.modality)
    elif f.modality:
        where.append(sa.exists().where(imaging_study_modalities.c.study_id == imaging_studies.c.id,
                                       imaging_study_modalities.c.modality == f.modality))
    if f.patient_id:
        where.append(imaging_studies.c.patient_id == f.patient_id)
    if f.mrn:   # (institution_id, mrn) is unique: a constant subquery, then the patient index in order
        where.append(imaging_studies.c.patient_id == sa.select(patients.c.id).where(
            patients.c.institution_id == f.institution_id, patients.c.mrn == f.mrn).scalar_subquery())
    if f.accession_number:
        where.append(imaging_studies.c.accession_number == f.accession_number)
    if f.description_contains:
        where.append(imaging_studies.c.description.contains(f.description_contains, autoescape=True))
    if f.date_from:
        where.append(sort_date >= f.date_from)
    if f.date_to:
        where.append(sort_date <= f.date_to)
    if after:
        where.append(sa.or_(sort_date < after[0], sa.and_(sort_date == after[0], sort_id < after[1])))
    return statement.where(*where).order_by(sort_date.desc(), sort_id.desc()).limit(limit)


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise validation_failed([FieldError("query.limit", f"must be between 1 and {MAX_PAGE_SIZE}", "out_of_range")])


def _decode(cursor: str) -> tuple[date, str]:
    day, row_id = decode_cursor(cursor, 2)
    try:
        if not isinstance(row_id, str) or not 0 < len(row_id) <= 26:
            raise ValueError
        return date.fromisoformat(day), row_id
    except (TypeError, ValueError):
        raise bad_request("The cursor is not valid.", code="invalid-cursor") from None


async def search_studies(db: Database, f: StudyFilter, limit: int, cursor: str | None
                         ) -> tuple[list[dict[str, Any]], str | None]:
    _check_limit(limit)
    after = _decode(cursor) if cursor else None
    async with db.connect() as conn:
        rows = (await conn.execute(study_statement(f, limit + 1, after))).all()
    page = [dict(r._mapping) for r in rows[:limit]]
    for r in page:
        r["modalities"] = sorted(filter(None, (r.pop("modality_list") or "").split(",")))
    next_cursor = encode_cursor([page[-1]["study_date"].isoformat(), page[-1]["id"]]) if len(rows) > limit else None
    return page, next_cursor


async def require_study(db: Database, institution_id: str, study_uid: str) -> dict[str, Any]:
    async with db.connect() as conn:
        row = (await conn.execute(sa.select(*STUDY_COLUMNS).where(
            imaging_studies.c.institution_id == institution_id, imaging_studies.c.study_uid == study_uid))).first()
    if row is None:
        raise not_found("study")
    return dict(row._mapping)


async def series_of(db: Database, institution_id: str, study_uid: str) -> list[dict[str, Any]]:
    study = await require_study(db, institution_id, study_uid)
    counts = (sa.select(sa.func.count()).where(imaging_instances.c.series_id == imaging_series.c.id)
              .scalar_subquery().label("instances"))
    async with db.connect() as conn:
        rows = (await conn.execute(sa.select(imaging_series.c.series_uid, imaging_series.c.modality,
                                             imaging_series.c.series_number, imaging_series.c.description,
                                             imaging_series.c.body_part, counts)
                                   .where(imaging_series.c.study_id == study["id"])
                                   .order_by(imaging_series.c.series_number, imaging_series.c.id))).all()
    return [dict(r._mapping) for r in rows]


INSTANCE_COLUMNS = (imaging_instances.c.id, imaging_instances.c.sop_instance_uid, imaging_instances.c.sop_class_uid,
                    imaging_instances.c.instance_number, imaging_instances.c.rows, imaging_instances.c.columns,
                    imaging_instances.c.frames, imaging_instances.c.size, imaging_instances.c.transfer_syntax_uid)


async def instances_of(db: Database, institution_id: str, study_uid: str, series_uid: str, limit: int,
                       cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
    _check_limit(limit)
    study = await require_study(db, institution_id, study_uid)
    async with db.connect() as conn:
        series_id = (await conn.execute(sa.select(imaging_series.c.id).where(
            imaging_series.c.study_id == study["id"], imaging_series.c.series_uid == series_uid))).scalar()
        if series_id is None:
            raise not_found("series")
        query = sa.select(*INSTANCE_COLUMNS).where(imaging_instances.c.series_id == series_id)
        if cursor:
            number, last_id = decode_cursor(cursor, 2)
            if not isinstance(number, int) or not isinstance(last_id, str):
                raise bad_request("The cursor is not valid.", code="invalid-cursor")
            query = query.where(sa.or_(imaging_instances.c.instance_number > number,
                                       sa.and_(imaging_instances.c.instance_number == number,
                                               imaging_instances.c.id > last_id)))
        rows = (await conn.execute(query.order_by(imaging_instances.c.instance_number, imaging_instances.c.id)
                                   .limit(limit + 1))).all()
    page = [dict(r._mapping) for r in rows[:limit]]
    return page, (encode_cursor([page[-1]["instance_number"], page[-1]["id"]]) if len(rows) > limit else None)


async def require_instance(db: Database, institution_id: str, study_uid: str, series_uid: str, sop_uid: str
                           ) -> dict[str, Any]:
    """The instance row with its study's patient; 404 unless it is this institution's."""
    async with db.connect() as conn:
        row = (await conn.execute(sa.select(*INSTANCE_COLUMNS, imaging_instances.c.object_key,
                                            imaging_instances.c.header, imaging_studies.c.patient_id)
                                  .select_from(imaging_instances
                                               .join(imaging_studies, imaging_studies.c.id == imaging_instances.c.study_id)
                                               .join(imaging_series, imaging_series.c.id == imaging_instances.c.series_id))
                                  .where(imaging_instances.c.institution_id == institution_id,
                                         imaging_instances.c.sop_instance_uid == sop_uid,
                                         imaging_studies.c.study_uid == study_uid,
                                         imaging_series.c.series_uid == series_uid))).first()
    if row is None:
        raise not_found("instance")
    return dict(row._mapping)
