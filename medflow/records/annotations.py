"""Annotations: labels on a case and regions on an image item (shape, coordinates, label,
author, time, status), versioned like every record. Annotating moves the case's
annotation status forward (none → in progress)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from medflow.db.engine import Database
from medflow.db.schema import annotations, case_items, cases
from medflow.errors import FieldError, not_found, validation_failed
from medflow.ids import new_id, utcnow
from medflow.records.cases import require_case
from medflow.records.versions import apply_change, history, locked_row


@dataclass(frozen=True)
class NewAnnotation:
    kind: str                      # label | region
    label: str
    item_id: str | None = None
    shape: str | None = None       # rect | polygon | point | ellipse (regions)
    coordinates: list[list[float]] | None = None
    status: str = "draft"


def _check_region(new: NewAnnotation) -> None:
    if new.kind == "region" and (new.item_id is None or new.shape is None or not new.coordinates):
        raise validation_failed([FieldError("body", "A region needs item_id, shape and coordinates.", "incomplete_region")])
    if new.kind == "label" and (new.shape or new.coordinates):
        raise validation_failed([FieldError("body", "A label has no shape or coordinates.", "label_with_shape")])


async def annotate(db: Database, institution_id: str, case_id: str, new: NewAnnotation, author_id: str) -> dict[str, Any]:
    _check_region(new)
    case = await require_case(db, institution_id, case_id)
    now = utcnow()
    row = {"id": new_id(), "institution_id": institution_id, "case_id": case_id, "item_id": new.item_id,
           "kind": new.kind, "label": new.label, "shape": new.shape, "coordinates": new.coordinates,
           "status": new.status, "author_id": author_id, "version": 1, "created_at": now, "updated_at": now}
    async with db.transaction() as conn:
        if new.item_id is not None:
            item = (await conn.execute(sa.select(case_items.c.kind).where(
                case_items.c.id == new.item_id, case_items.c.case_id == case_id,
                case_items.c.deleted_at.is_(None)))).scalar()
            if item is None:
                raise validation_failed([FieldError("body.item_id", "No such item on this case.", "not_found")])
        await conn.execute(annotations.insert().values(**row))
        if case["annotation_status"] == "none":
            await conn.execute(cases.update().where(cases.c.id == case_id, cases.c.annotation_status == "none")
                               .values(annotation_status="in_progress"))
    return await require_annotation(db, institution_id, case_id, row["id"])


async def require_annotation(db: Database, institution_id: str, case_id: str, annotation_id: str) -> dict[str, Any]:
    async with db.connect() as conn:
        row = (await conn.execute(sa.select(annotations).where(
            annotations.c.id == annotation_id, annotations.c.case_id == case_id,
            annotations.c.institution_id == institution_id, annotations.c.deleted_at.is_(None)))).mappings().first()
    if row is None:
        raise not_found("annotation")
    return dict(row)


async def list_annotations(db: Database, institution_id: str, case_id: str) -> list[dict[str, Any]]:
    await require_case(db, institution_id, case_id)
    async with db.connect() as conn:
        rows = (await conn.execute(sa.select(annotations).where(
            annotations.c.case_id == case_id, annotations.c.institution_id == institution_id,
            annotations.c.deleted_at.is_(None)).order_by(annotations.c.id))).mappings()
        return [dict(r) for r in rows]


async def update_annotation(db: Database, institution_id: str, case_id: str, annotation_id: str,
                            changes: dict[str, Any], *, expected_version: int, actor_id: str,
                            reason: str | None) -> dict[str, Any]:
    async with db.transaction() as conn:
        current = await locked_row(conn, annotations, institution_id, annotation_id, "annotation")
        if current["case_id"] != case_id:
            raise not_found("annotation")
        await apply_change(conn, annotations, "annotation", current, changes, expected_version=expected_version,
                           actor_id=actor_id, reason=reason)
    return await require_annotation(db, institution_id, case_id, annotation_id)


async def annotation_history(db: Database, institution_id: str, case_id: str, annotation_id: str):
    await require_annotation(db, institution_id, case_id, annotation_id)
    async with db.connect() as conn:
        return await history(conn, "annotation", institution_id, annotation_id)
