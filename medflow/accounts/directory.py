"""The institution and department dictionary: read-mostly, keyset-paginated, cached."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime

import sqlalchemy as sa

from medflow.cache.ports import Cache
from medflow.db.engine import Database
from medflow.db.schema import departments, institutions
from medflow.pagination import decode_cursor, encode_cursor

DICTIONARY_TTL_S = 300


@dataclass(frozen=True)
class Institution:
    id: str
    code: str
    name: str
    kind: str
    region: str | None


@dataclass(frozen=True)
class Department:
    id: str
    institution_id: str
    code: str
    name: str


@dataclass(frozen=True)
class Page:
    items: list
    next_cursor: str | None


async def list_institutions(db: Database, limit: int, cursor: str | None) -> Page:
    """Active institutions ordered by (name, id), one keyset page."""
    query = sa.select(institutions.c.id, institutions.c.code, institutions.c.name, institutions.c.kind,
                      institutions.c.region).where(institutions.c.active == sa.true())
    if cursor:
        name, last_id = decode_cursor(cursor, 2)
        query = query.where(sa.tuple_(institutions.c.name, institutions.c.id) > sa.tuple_(sa.literal(name), sa.literal(last_id)))
    query = query.order_by(institutions.c.name, institutions.c.id).limit(limit + 1)
    async with db.connect() as conn:
        rows = (await conn.execute(query)).all()
    items = [Institution(*row) for row in rows[:limit]]
    return Page(items, encode_cursor([items[-1].name, items[-1].id]) if len(rows) > limit else None)


async def get_institution(db: Database, institution_id: str) -> Institution | None:
    query = sa.select(institutions.c.id, institutions.c.code, institutions.c.name, institutions.c.kind,
                      institutions.c.region).where(institutions.c.id == institution_id, institutions.c.active == sa.true())
    async with db.connect() as conn:
        row = (await conn.execute(query)).first()
    return Institution(*row) if row else None


async def list_departments(db: Database, cache: Cache, institution_id: str) -> list[Department] | None:
    """All active departments of an institution (a short list), cache-aside; None when the
    institution does not exist."""
    key = f"dict:departments:{institution_id}"
    cached = await cache.get(key)
    if cached is not None:
        return [Department(**d) for d in json.loads(cached)]
    if await get_institution(db, institution_id) is None:
        return None
    query = (sa.select(departments.c.id, departments.c.institution_id, departments.c.code, departments.c.name)
             .where(departments.c.institution_id == institution_id, departments.c.active == sa.true())
             .order_by(departments.c.name, departments.c.id))
    async with db.connect() as conn:
        result = [Department(*row) for row in (await conn.execute(query)).all()]
    await cache.set(key, json.dumps([asdict(d) for d in result]).encode(), DICTIONARY_TTL_S)
    return result


async def forget_departments(cache: Cache, institution_id: str) -> None:
    """Invalidate the cached list after a department changes."""
    await cache.delete(f"dict:departments:{institution_id}")


@dataclass(frozen=True)
class NewInstitution:
    code: str
    name: str
    kind: str = "hospital"
    region: str | None = None


async def create_institution(db: Database, new: NewInstitution, *, institution_id: str, now: datetime) -> None:
    async with db.transaction() as conn:
        await conn.execute(institutions.insert().values(id=institution_id, code=new.code, name=new.name, kind=new.kind,
                                                        region=new.region, created_at=now, updated_at=now))


async def create_department(db: Database, cache: Cache, institution_id: str, code: str, name: str, *,
                            department_id: str, now: datetime) -> None:
    async with db.transaction() as conn:
        await conn.execute(departments.insert().values(id=department_id, institution_id=institution_id, code=code,
                                                       name=name, created_at=now, updated_at=now))
    await forget_departments(cache, institution_id)
