"""The institution and department dictionary and the doctor directory: read-mostly,
keyset-paginated, served cache-aside (``medflow.cache.aside``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from medflow.cache.aside import CacheAside, CacheKind, as_aside
from medflow.cache.ports import Cache
from medflow.db.engine import Database
from medflow.db.schema import departments, institutions, users
from medflow.errors import bad_request
from medflow.pagination import decode_cursor, encode_cursor

DICTIONARIES = CacheKind("dictionaries", ttl_min_s=600, ttl_max_s=1800)
PROFILES = CacheKind("profiles", ttl_min_s=600, ttl_max_s=1800)

# One generation for the department lists of every institution: the public route takes any
# institution id, and a scope per id would let anyone mint a generation key per guess.
# Departments change rarely; a change reloads each institution's list once.
DEPARTMENT_LISTS = "departments"


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


async def list_departments(db: Database, cache: Cache | CacheAside, institution_id: str) -> list[Department] | None:
    """All active departments of an institution (a short list), served cache-aside; None
    when the institution does not exist (remembered briefly, like any unknown id)."""
    async def load() -> list[dict] | None:
        found = await _load_departments(db, institution_id)
        return None if found is None else [asdict(d) for d in found]

    cached = await as_aside(cache).get(DICTIONARIES, DEPARTMENT_LISTS, institution_id, load,
                                       lambda found: tuple(Department(**d) for d in found))
    return None if cached is None else list(cached)


async def _load_departments(db: Database, institution_id: str) -> list[Department] | None:
    if await get_institution(db, institution_id) is None:
        return None
    query = (sa.select(departments.c.id, departments.c.institution_id, departments.c.code, departments.c.name)
             .where(departments.c.institution_id == institution_id, departments.c.active == sa.true())
             .order_by(departments.c.name, departments.c.id))
    async with db.connect() as conn:
        return [Department(*row) for row in (await conn.execute(query)).all()]


async def forget_departments(cache: Cache | CacheAside, institution_id: str) -> None:
    """Invalidate the cached department lists after a department changes (every institution's:
    see ``DEPARTMENT_LISTS``)."""
    await as_aside(cache).invalidate(DICTIONARIES, DEPARTMENT_LISTS)


# --- doctor profiles ---------------------------------------------------------------------

@dataclass(frozen=True)
class DoctorProfile:
    """What any signed-in member of an institution may see of its active doctors."""

    id: str
    display_name: str
    department_id: str | None
    profile: dict[str, Any] | None


@dataclass(frozen=True)
class DoctorPage:
    items: tuple[DoctorProfile, ...]
    next_cursor: str | None

    def to_json(self) -> dict[str, Any]:
        return {"items": [asdict(d) for d in self.items], "next_cursor": self.next_cursor}

    @staticmethod
    def from_json(data: dict[str, Any]) -> "DoctorPage":
        return DoctorPage(tuple(DoctorProfile(**d) for d in data["items"]), data["next_cursor"])


async def list_doctors(db: Database, cache: Cache | CacheAside, institution_id: str, *, department_id: str | None,
                       limit: int, cursor: str | None) -> DoctorPage:
    """Active doctors of an institution by (display name, id), one keyset page, served
    cache-aside with profile TTLs; ``forget_doctor_profiles`` invalidates every page."""
    after = _doctor_cursor(cursor)  # a malformed cursor is a 400 before anything is cached
    item = f"doctors:{department_id or '*'}:{limit}:{encode_cursor(after) if after else '-'}"

    async def load() -> dict[str, Any]:
        return (await _load_doctors(db, institution_id, department_id, limit, after)).to_json()

    return await as_aside(cache).get(PROFILES, institution_id, item, load, DoctorPage.from_json)


def _doctor_cursor(cursor: str | None) -> list[str] | None:
    if not cursor:
        return None
    name, last_id = decode_cursor(cursor, 2)
    if not isinstance(name, str) or not isinstance(last_id, str):
        raise bad_request("The cursor is not valid.", code="invalid-cursor")
    return [name, last_id]


async def _load_doctors(db: Database, institution_id: str, department_id: str | None, limit: int,
                        after: list[str] | None) -> DoctorPage:
    query = (sa.select(users.c.id, users.c.display_name, users.c.department_id, users.c.profile)
             .where(users.c.institution_id == institution_id, users.c.role == "doctor", users.c.status == "active"))
    if department_id:
        query = query.where(users.c.department_id == department_id)
    if after:
        query = query.where(sa.tuple_(users.c.display_name, users.c.id) > sa.tuple_(sa.literal(after[0]), sa.literal(after[1])))
    query = query.order_by(users.c.display_name, users.c.id).limit(limit + 1)
    async with db.connect() as conn:
        rows = (await conn.execute(query)).all()
    items = tuple(DoctorProfile(*row) for row in rows[:limit])
    more = len(rows) > limit
    return DoctorPage(items, encode_cursor([items[-1].display_name, items[-1].id]) if more else None)


async def forget_doctor_profiles(cache: Cache | CacheAside, institution_id: str) -> None:
    """Invalidate every cached page of an institution's doctor list (one generation bump).

    Call after any committed change that can alter it: a doctor account created, enabled,
    disabled or deleted, a role or department assignment, a doctor's own profile edit.
    """
    await as_aside(cache).invalidate(PROFILES, institution_id)


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


async def create_department(db: Database, cache: Cache | CacheAside, institution_id: str, code: str, name: str, *,
                            department_id: str, now: datetime) -> None:
    async with db.transaction() as conn:
        await conn.execute(departments.insert().values(id=department_id, institution_id=institution_id, code=code,
                                                       name=name, created_at=now, updated_at=now))
    await forget_departments(cache, institution_id)
