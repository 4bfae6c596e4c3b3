"""Read views over a patient's records: the patient 360 view for staff, and the summaries a
doctor released to the patient for the patient."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from medflow.cache.aside import CacheAside, as_aside
from medflow.cache.ports import Cache
from medflow.db.engine import Database
from medflow.db.schema import case_items, cases
from medflow.records.search import Keyset, decode_keyset, encode_keyset
from medflow.records.cases import items_of
from medflow.records.patients import Identifier, Patient, identifiers_of, require_patient
from medflow.records.released import RELEASED, released_scope


@dataclass(frozen=True)
class PatientOverview:
    patient: Patient
    identifiers: list[Identifier]
    cases: list[dict[str, Any]]          # each with its "items"
    latest_results: dict[str, dict[str, Any]]   # kind -> newest item of that kind (lab panels, vitals)
    next_cursor: str | None


def _after(cursor: str | None) -> tuple[datetime, str] | None:
    """(exam_time, id) of the last case of the previous page (the search's cursor format)."""
    if not cursor:
        return None
    keyset = decode_keyset(cursor)
    return keyset.exam_time, keyset.id


def _next_cursor(page: list[dict[str, Any]], more: bool) -> str | None:
    return encode_keyset(Keyset(page[-1]["exam_time"], page[-1]["id"])) if more else None


def _page_of_cases(institution_id: str, patient_id: str, limit: int, after) -> sa.Select:
    query = sa.select(cases).where(cases.c.institution_id == institution_id, cases.c.patient_id == patient_id,
                                   cases.c.deleted_at.is_(None))
    if after:
        exam_time, case_id = after
        query = query.where(cases.c.exam_time <= exam_time,
                            sa.or_(cases.c.exam_time < exam_time, cases.c.id < case_id))
    return query.order_by(cases.c.exam_time.desc(), cases.c.id.desc()).limit(limit + 1)


async def patient_overview(db: Database, institution_id: str, patient_id: str, limit: int,
                           cursor: str | None) -> PatientOverview:
    """Identifiers, exams newest first with their items (one keyset page), latest results."""
    patient = await require_patient(db, institution_id, patient_id)
    async with db.connect() as conn:
        rows = [dict(r) for r in (await conn.execute(_page_of_cases(institution_id, patient_id, limit, _after(cursor)))).mappings()]
        latest = await _latest_results(conn, institution_id, patient_id)
    page = rows[:limit]
    items = await items_of(db, institution_id, [c["id"] for c in page])
    for case in page:
        case["items"] = items[case["id"]]
    next_cursor = _next_cursor(page, len(rows) > limit)
    return PatientOverview(patient, await identifiers_of(db, patient.person_id), page, latest, next_cursor)


async def _latest_results(conn, institution_id: str, patient_id: str) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for kind in ("lab_panel", "vitals"):
        row = (await conn.execute(
            sa.select(case_items, cases.c.exam_time).select_from(case_items.join(cases, cases.c.id == case_items.c.case_id))
            .where(cases.c.institution_id == institution_id, cases.c.patient_id == patient_id,
                   cases.c.deleted_at.is_(None), case_items.c.kind == kind, case_items.c.deleted_at.is_(None))
            .order_by(cases.c.exam_time.desc(), case_items.c.id.desc()).limit(1))).mappings().first()
        if row:
            latest[kind] = dict(row)
    return latest


async def released_summaries(db: Database, cache: Cache | CacheAside, institution_id: str, patient_id: str,
                             limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """Only what a doctor released: exam type, time, title and the released summary (JSON
    values: times as ISO 8601), newest first, served cache-aside per patient."""
    after = _after(cursor)  # a malformed cursor is a 400 before anything is cached

    async def load() -> dict[str, Any]:
        page, next_cursor = await _load_released(db, institution_id, patient_id, limit, after)
        return {"items": [_json_row(r) for r in page], "next_cursor": next_cursor}

    found = await as_aside(cache).get(RELEASED, released_scope(institution_id, patient_id),
                                      f"page:{limit}:{cursor or '-'}", load)
    return found["items"], found["next_cursor"]


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


async def _load_released(db: Database, institution_id: str, patient_id: str, limit: int,
                         after) -> tuple[list[dict[str, Any]], str | None]:
    query = (sa.select(cases.c.id, cases.c.exam_type, cases.c.modality, cases.c.exam_time, cases.c.title,
                       cases.c.released_summary, cases.c.released_at)
             .where(cases.c.institution_id == institution_id, cases.c.patient_id == patient_id,
                    cases.c.deleted_at.is_(None), cases.c.released_at.is_not(None)))
    if after:
        query = query.where(cases.c.exam_time <= after[0], sa.or_(cases.c.exam_time < after[0], cases.c.id < after[1]))
    async with db.connect() as conn:
        rows = [dict(r) for r in (await conn.execute(
            query.order_by(cases.c.exam_time.desc(), cases.c.id.desc()).limit(limit + 1))).mappings()]
    page = rows[:limit]
    return page, _next_cursor(page, len(rows) > limit)
