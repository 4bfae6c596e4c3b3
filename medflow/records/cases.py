"""Cases (exams) and their items: create, read, versioned update, soft delete, release to
the patient, data-quality labels. Every query is scoped to the caller's institution."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from medflow.cache.aside import CacheAside
from medflow.cache.ports import Cache
from medflow.db.engine import Database
from medflow.db.schema import case_diagnoses, case_items, cases, departments, patients, users
from medflow.errors import FieldError, not_found, validation_failed
from medflow.ids import new_id, utcnow
from medflow.records.released import forget_released
from medflow.records.versions import apply_change, as_of, history, locked_row

CLINICAL_FIELDS = ("exam_type", "modality", "exam_time", "department_id", "doctor_id", "status", "title",
                   "diagnosis_codes", "annotation_status")


@dataclass(frozen=True)
class NewCase:
    patient_id: str
    exam_type: str
    modality: str
    exam_time: datetime
    title: str = ""
    department_id: str | None = None
    doctor_id: str | None = None
    status: str = "draft"
    diagnosis_codes: tuple[str, ...] = ()


async def _check_references(conn, institution_id: str, values: dict[str, Any]) -> None:
    """Patient, department and doctor must exist in the same institution (422 otherwise)."""
    checks = [("patient_id", patients, patients.c.deleted_at.is_(None)),
              ("department_id", departments, departments.c.active == sa.true()),
              ("doctor_id", users, sa.and_(users.c.role == "doctor", users.c.status == "active"))]
    errors = []
    for field, table, alive in checks:
        if values.get(field) is None:
            continue
        found = (await conn.execute(sa.select(table.c.id).where(table.c.id == values[field],
                                                                table.c.institution_id == institution_id, alive))).scalar()
        if found is None:
            errors.append(FieldError(f"body.{field}", f"No such {field.removesuffix('_id')} in your institution.", "not_found"))
    if errors:
        raise validation_failed(errors)


async def _write_diagnoses(conn, case: dict[str, Any]) -> None:
    await conn.execute(case_diagnoses.delete().where(case_diagnoses.c.case_id == case["id"]))
    for code in dict.fromkeys(case.get("diagnosis_codes") or []):
        await conn.execute(case_diagnoses.insert().values(case_id=case["id"], code=code,
                                                          institution_id=case["institution_id"],
                                                          exam_time=case["exam_time"]))


async def create_case(db: Database, institution_id: str, new: NewCase, actor_id: str) -> dict[str, Any]:
    now = utcnow()
    row = {"id": new_id(), "institution_id": institution_id, "patient_id": new.patient_id, "exam_type": new.exam_type,
           "modality": new.modality, "exam_time": new.exam_time, "department_id": new.department_id,
           "doctor_id": new.doctor_id, "status": new.status, "annotation_status": "none", "quality_label": "unchecked",
           "title": new.title, "diagnosis_codes": list(new.diagnosis_codes), "version": 1, "created_by": actor_id,
           "created_at": now, "updated_at": now}
    async with db.transaction() as conn:
        await _check_references(conn, institution_id, row)
        await conn.execute(cases.insert().values(**row))
        await _write_diagnoses(conn, row)
    return await require_case(db, institution_id, row["id"])


async def require_case(db: Database, institution_id: str, case_id: str, *, include_deleted: bool = False) -> dict[str, Any]:
    query = sa.select(cases).where(cases.c.id == case_id, cases.c.institution_id == institution_id)
    if not include_deleted:
        query = query.where(cases.c.deleted_at.is_(None))
    async with db.connect() as conn:
        row = (await conn.execute(query)).mappings().first()
    if row is None:
        raise not_found("case")
    return dict(row)


async def update_case(db: Database, cache: Cache | CacheAside, institution_id: str, case_id: str,
                      changes: dict[str, Any], *, expected_version: int, actor_id: str,
                      reason: str | None) -> dict[str, Any]:
    """A versioned edit; the previous values are kept with who, when and why. The patient's
    cached released summaries are forgotten (a release is such an edit)."""
    async with db.transaction() as conn:
        current = await locked_row(conn, cases, institution_id, case_id, "case")
        await _check_references(conn, institution_id, changes)
        updated = await apply_change(conn, cases, "case", current, changes, expected_version=expected_version,
                                     actor_id=actor_id, reason=reason)
        if "diagnosis_codes" in changes or "exam_time" in changes:
            await _write_diagnoses(conn, updated)
    await forget_released(cache, institution_id, current["patient_id"])
    return await require_case(db, institution_id, case_id)


async def delete_case(db: Database, cache: Cache | CacheAside, institution_id: str, case_id: str, *,
                      expected_version: int, actor_id: str, reason: str | None) -> None:
    async with db.transaction() as conn:
        current = await locked_row(conn, cases, institution_id, case_id, "case")
        await apply_change(conn, cases, "case", current, {"deleted_at": utcnow()}, expected_version=expected_version,
                           actor_id=actor_id, reason=reason)
    await forget_released(cache, institution_id, current["patient_id"])


async def case_history(db: Database, institution_id: str, case_id: str):
    await require_case(db, institution_id, case_id, include_deleted=True)
    async with db.connect() as conn:
        return await history(conn, "case", institution_id, case_id)


async def case_version(db: Database, institution_id: str, case_id: str, version: int) -> dict[str, Any]:
    current = await require_case(db, institution_id, case_id, include_deleted=True)
    if not 1 <= version <= current["version"]:
        raise not_found("version")
    async with db.connect() as conn:
        entries = await history(conn, "case", institution_id, case_id)
    return as_of(current, entries, version)


# --- items ---------------------------------------------------------------------------

async def add_item(db: Database, institution_id: str, case_id: str, kind: str, title: str, content: dict[str, Any],
                   actor_id: str) -> dict[str, Any]:
    await require_case(db, institution_id, case_id)
    now = utcnow()
    row = {"id": new_id(), "case_id": case_id, "institution_id": institution_id, "kind": kind, "title": title,
           "content": content, "version": 1, "created_by": actor_id, "created_at": now, "updated_at": now}
    async with db.transaction() as conn:
        await conn.execute(case_items.insert().values(**row))
    return await require_item(db, institution_id, case_id, row["id"])


async def require_item(db: Database, institution_id: str, case_id: str, item_id: str) -> dict[str, Any]:
    async with db.connect() as conn:
        row = (await conn.execute(sa.select(case_items).where(
            case_items.c.id == item_id, case_items.c.case_id == case_id, case_items.c.institution_id == institution_id,
            case_items.c.deleted_at.is_(None)))).mappings().first()
    if row is None:
        raise not_found("item")
    return dict(row)


async def items_of(db: Database, institution_id: str, case_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    if not case_ids:
        return {}
    async with db.connect() as conn:
        rows = (await conn.execute(sa.select(case_items).where(
            case_items.c.case_id.in_(case_ids), case_items.c.institution_id == institution_id,
            case_items.c.deleted_at.is_(None)).order_by(case_items.c.case_id, case_items.c.kind, case_items.c.id))).mappings()
        grouped: dict[str, list[dict[str, Any]]] = {cid: [] for cid in case_ids}
        for row in rows:
            grouped[row["case_id"]].append(dict(row))
    return grouped


async def _change_item(db: Database, institution_id: str, case_id: str, item_id: str, changes: dict[str, Any], *,
                       expected_version: int, actor_id: str, reason: str | None) -> None:
    await require_case(db, institution_id, case_id)
    async with db.transaction() as conn:
        current = await locked_row(conn, case_items, institution_id, item_id, "item")
        if current["case_id"] != case_id:
            raise not_found("item")
        await apply_change(conn, case_items, "item", current, changes, expected_version=expected_version,
                           actor_id=actor_id, reason=reason)


async def update_item(db: Database, institution_id: str, case_id: str, item_id: str, changes: dict[str, Any], *,
                      expected_version: int, actor_id: str, reason: str | None) -> dict[str, Any]:
    await _change_item(db, institution_id, case_id, item_id, changes, expected_version=expected_version,
                       actor_id=actor_id, reason=reason)
    return await require_item(db, institution_id, case_id, item_id)


async def delete_item(db: Database, institution_id: str, case_id: str, item_id: str, *, expected_version: int,
                      actor_id: str, reason: str | None) -> None:
    await _change_item(db, institution_id, case_id, item_id, {"deleted_at": utcnow()},
                       expected_version=expected_version, actor_id=actor_id, reason=reason)


async def item_history(db: Database, institution_id: str, case_id: str, item_id: str):
    async with db.connect() as conn:
        found = (await conn.execute(sa.select(case_items.c.id).where(
            case_items.c.id == item_id, case_items.c.case_id == case_id,
            case_items.c.institution_id == institution_id))).scalar()
        if found is None:
            raise not_found("item")
        return await history(conn, "item", institution_id, item_id)
