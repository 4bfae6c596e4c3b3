"""Patients and the master patient index (MPI).

A patient is a person as one institution knows them (medical record number, MRN); a person
may be known under several identifiers (each hospital's MRN, a national id). Identifiers
given at registration that are already known resolve to the same person; two persons found
to be one are merged, keeping every source identifier.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa

from medflow.db.engine import Database, is_unique_violation
from medflow.db.schema import institutions, patient_identifiers, patients, persons
from medflow.errors import conflict, not_found
from medflow.ids import new_id, utcnow
from medflow.pagination import decode_cursor, encode_cursor


@dataclass(frozen=True)
class Identifier:
    system: str
    value: str


@dataclass(frozen=True)
class Patient:
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


@dataclass(frozen=True)
class NewPatient:
    mrn: str
    display_name: str
    sex: str = "unknown"
    birth_date: date | None = None
    identifiers: tuple[Identifier, ...] = ()
    user_id: str | None = None


PATIENT_COLUMNS = (patients.c.id, patients.c.institution_id, patients.c.person_id, patients.c.mrn,
                   patients.c.display_name, patients.c.sex, patients.c.birth_date, patients.c.user_id,
                   patients.c.version, patients.c.created_at)


def mrn_system(institution_code: str) -> str:
    """The identifier system of an institution's medical record numbers."""
    return f"mrn:{institution_code}"


async def _persons_of(conn, identifiers: list[Identifier]) -> set[str]:
    if not identifiers:
        return set()
    condition = sa.or_(*[sa.and_(patient_identifiers.c.system == i.system, patient_identifiers.c.value == i.value)
                         for i in identifiers])
    return set((await conn.execute(sa.select(patient_identifiers.c.person_id).where(condition))).scalars())


async def register_patient(db: Database, institution_id: str, new: NewPatient) -> Patient:
    """Create the patient; link to the person its identifiers already name, or a new person.
    409 when the MRN is taken here or the identifiers name two different persons."""
    now, patient_id = utcnow(), new_id()
    try:
        async with db.transaction() as conn:
            code = (await conn.execute(sa.select(institutions.c.code).where(institutions.c.id == institution_id))).scalar_one()
            identifiers = [Identifier(mrn_system(code), new.mrn), *new.identifiers]
            known = await _persons_of(conn, identifiers)
            if len(known) > 1:
                raise conflict("These identifiers belong to different persons; merge them first.", code="identity-conflict")
            if known:
                person_id = known.pop()
            else:
                person_id = new_id()
                await conn.execute(persons.insert().values(id=person_id, created_at=now))
            await conn.execute(patients.insert().values(
                id=patient_id, institution_id=institution_id, person_id=person_id, mrn=new.mrn,
                display_name=new.display_name, sex=new.sex, birth_date=new.birth_date, user_id=new.user_id,
                version=1, created_at=now, updated_at=now))
            await _add_identifiers(conn, person_id, patient_id, identifiers, now)
    except sa.exc.IntegrityError as exc:
        if is_unique_violation(exc):
            raise conflict("That medical record number is already registered here.", code="mrn-taken") from None
        raise
    return await require_patient(db, institution_id, patient_id)


async def _add_identifiers(conn, person_id: str, patient_id: str, identifiers: list[Identifier], now: datetime) -> None:
    existing = {(r.system, r.value) for r in (await conn.execute(
        sa.select(patient_identifiers.c.system, patient_identifiers.c.value)
        .where(patient_identifiers.c.person_id == person_id))).all()}
    for identifier in identifiers:
        if (identifier.system, identifier.value) not in existing:
            await conn.execute(patient_identifiers.insert().values(
                id=new_id(), person_id=person_id, patient_id=patient_id, system=identifier.system,
                value=identifier.value, created_at=now))


async def get_patient(db: Database, institution_id: str, patient_id: str) -> Patient | None:
    async with db.connect() as conn:
        row = (await conn.execute(sa.select(*PATIENT_COLUMNS).where(
            patients.c.id == patient_id, patients.c.institution_id == institution_id,
            patients.c.deleted_at.is_(None)))).first()
    return Patient(*row) if row else None


async def require_patient(db: Database, institution_id: str, patient_id: str) -> Patient:
    found = await get_patient(db, institution_id, patient_id)
    if found is None:
        raise not_found("patient")
    return found


async def patient_of_user(db: Database, institution_id: str, user_id: str) -> Patient | None:
    """The patient record linked to a patient's own account."""
    async with db.connect() as conn:
        row = (await conn.execute(sa.select(*PATIENT_COLUMNS).where(
            patients.c.user_id == user_id, patients.c.institution_id == institution_id,
            patients.c.deleted_at.is_(None)))).first()
    return Patient(*row) if row else None


async def list_patients(db: Database, institution_id: str, name_prefix: str | None, limit: int,
                        cursor: str | None) -> tuple[list[Patient], str | None]:
    """Patients by name, keyset-paginated (index institution_id, display_name, id)."""
    query = sa.select(*PATIENT_COLUMNS).where(patients.c.institution_id == institution_id, patients.c.deleted_at.is_(None))
    if name_prefix:
        escaped = name_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(patients.c.display_name.like(escaped + "%", escape="\\"))
    if cursor:
        name, last_id = decode_cursor(cursor, 2)
        query = query.where(sa.or_(patients.c.display_name > name,
                                   sa.and_(patients.c.display_name == name, patients.c.id > last_id)))
    async with db.connect() as conn:
        rows = (await conn.execute(query.order_by(patients.c.display_name, patients.c.id).limit(limit + 1))).all()
    items = [Patient(*r) for r in rows[:limit]]
    return items, (encode_cursor([items[-1].display_name, items[-1].id]) if len(rows) > limit else None)


async def identifiers_of(db: Database, person_id: str) -> list[Identifier]:
    async with db.connect() as conn:
        rows = (await conn.execute(sa.select(patient_identifiers.c.system, patient_identifiers.c.value)
                                   .where(patient_identifiers.c.person_id == person_id)
                                   .order_by(patient_identifiers.c.system, patient_identifiers.c.value))).all()
    return [Identifier(*r) for r in rows]


async def merge_into(db: Database, institution_id: str, keep_patient_id: str, other: Identifier) -> tuple[str, str, int]:
    """The person known by ``other`` is the same as the kept patient's person: every patient
    and identifier of theirs moves to the kept person. Returns (kept person, merged person,
    identifiers moved)."""
    async with db.transaction() as conn:
        kept = (await conn.execute(sa.select(patients.c.person_id).where(
            patients.c.id == keep_patient_id, patients.c.institution_id == institution_id,
            patients.c.deleted_at.is_(None)))).scalar()
        if kept is None:
            raise not_found("patient")
        merged = (await conn.execute(sa.select(patient_identifiers.c.person_id).where(
            patient_identifiers.c.system == other.system, patient_identifiers.c.value == other.value))).scalar()
        if merged is None:
            raise not_found("identifier")
        if merged == kept:
            raise conflict("Both already name the same person.", code="already-merged")
        moved = await conn.execute(patient_identifiers.update().where(patient_identifiers.c.person_id == merged)
                                   .values(person_id=kept))
        await conn.execute(patients.update().where(patients.c.person_id == merged).values(person_id=kept))
        await conn.execute(persons.delete().where(persons.c.id == merged))
    return kept, merged, moved.rowcount
