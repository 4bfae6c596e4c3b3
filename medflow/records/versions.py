"""Versioned edits: every change keeps the previous values, who changed them, when and why.

A record's history is its rows in ``record_versions``; version N of a record is its current
state with the old values of versions N and later laid over it, newest first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from medflow.db.schema import record_versions
from medflow.errors import conflict, not_found
from medflow.ids import new_id, utcnow


@dataclass(frozen=True)
class VersionEntry:
    version: int
    changed_by: str | None
    changed_at: datetime
    reason: str | None
    old_values: dict[str, Any]


def _jsonable(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


async def locked_row(conn: AsyncConnection, table: sa.Table, institution_id: str, entity_id: str,
                     what: str, *, include_deleted: bool = False) -> dict[str, Any]:
    """The current row, locked for update (MySQL/TiDB); a 404 when absent or in another institution."""
    query = sa.select(table).where(table.c.id == entity_id, table.c.institution_id == institution_id).with_for_update()
    if not include_deleted and "deleted_at" in table.c:
        query = query.where(table.c.deleted_at.is_(None))
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        raise not_found(what)
    return dict(row)


async def apply_change(conn: AsyncConnection, table: sa.Table, entity_type: str, current: dict[str, Any],
                       changes: dict[str, Any], *, expected_version: int, actor_id: str | None,
                       reason: str | None) -> dict[str, Any]:
    """Write ``changes`` keeping the old values; 409 when ``expected_version`` is not current."""
    if expected_version != current["version"]:
        raise conflict(f"The record changed meanwhile (now version {current['version']}); reload and retry.",
                       code="version-conflict")
    old = {k: _jsonable(current[k]) for k in changes if current.get(k) != changes[k]}
    now = utcnow()
    await conn.execute(record_versions.insert().values(
        id=new_id(), institution_id=current["institution_id"], entity_type=entity_type, entity_id=current["id"],
        version=current["version"], changed_by=actor_id, changed_at=now, reason=reason, old_values=old))
    values = {**changes, "version": current["version"] + 1}
    if "updated_at" in table.c:
        values["updated_at"] = now
    result = await conn.execute(table.update().where(table.c.id == current["id"], table.c.version == current["version"])
                                .values(**values))
    if result.rowcount != 1:
        raise conflict("The record changed meanwhile; reload and retry.", code="version-conflict")
    return {**current, **values}


async def history(conn: AsyncConnection, entity_type: str, institution_id: str, entity_id: str) -> list[VersionEntry]:
    rows = (await conn.execute(sa.select(record_versions).where(
        record_versions.c.entity_type == entity_type, record_versions.c.entity_id == entity_id,
        record_versions.c.institution_id == institution_id).order_by(record_versions.c.version.desc()))).mappings()
    return [VersionEntry(r["version"], r["changed_by"], r["changed_at"], r["reason"], r["old_values"]) for r in rows]


def as_of(current: dict[str, Any], entries: list[VersionEntry], version: int) -> dict[str, Any]:
    """The record as it was at ``version`` (entries newest first)."""
    state = {k: _jsonable(v) for k, v in current.items()}
    for entry in entries:
        if entry.version < version:
            break
        state.update(entry.old_values)
    state["version"] = version
    return state
