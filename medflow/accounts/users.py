"""User accounts: creation, reads scoped to the caller's institution, profile, status, role.

Every query names the institution; an id from another institution is "not found".
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from medflow.accounts.policy import get_policy
from medflow.auth.passwords import Hasher
from medflow.db.engine import Database, is_unique_violation
from medflow.db.schema import credentials, departments, institutions, refresh_tokens, users
from medflow.errors import FieldError, conflict, not_found, validation_failed
from medflow.ids import new_id, utcnow
from medflow.pagination import decode_cursor, encode_cursor

USER_COLUMNS = (users.c.id, users.c.institution_id, users.c.department_id, users.c.username, users.c.role,
                users.c.status, users.c.display_name, users.c.email, users.c.phone, users.c.profile,
                users.c.version, users.c.created_at, users.c.updated_at)


@dataclass(frozen=True)
class User:
    id: str
    institution_id: str
    department_id: str | None
    username: str
    role: str
    status: str
    display_name: str
    email: str | None
    phone: str | None
    profile: dict[str, Any] | None
    version: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class NewUser:
    username: str
    role: str
    display_name: str
    password: str
    email: str | None = None
    phone: str | None = None
    department_id: str | None = None
    must_change_password: bool = False
    profile: dict[str, Any] | None = field(default=None)


def _user(row: Any) -> User:
    return User(**dict(row._mapping))


async def institution_by_code(db: Database, code: str) -> str | None:
    async with db.connect() as conn:
        return (await conn.execute(sa.select(institutions.c.id).where(institutions.c.code == code,
                                                                      institutions.c.active == sa.true()))).scalar()


async def _check_department(conn, institution_id: str, department_id: str | None) -> None:
    if department_id is None:
        return
    found = (await conn.execute(sa.select(departments.c.id).where(
        departments.c.id == department_id, departments.c.institution_id == institution_id,
        departments.c.active == sa.true()))).scalar()
    if found is None:
        raise validation_failed([FieldError("body.department_id", "No such department in your institution.", "not_found")])


async def create_user(db: Database, hasher: Hasher, institution_id: str, new: NewUser) -> User:
    """Check the password against the institution's policy, hash it, write user and credential
    in one transaction; 409 when the username is taken in the institution."""
    policy = await get_policy(db, institution_id)
    policy.rules.check(new.password, "body.password", new.username)
    password_hash = await asyncio.to_thread(hasher.hash, new.password)
    now, user_id = utcnow(), new_id()
    try:
        async with db.transaction() as conn:
            await _check_department(conn, institution_id, new.department_id)
            await conn.execute(users.insert().values(
                id=user_id, institution_id=institution_id, department_id=new.department_id, username=new.username,
                role=new.role, status="active", display_name=new.display_name, email=new.email, phone=new.phone,
                profile=new.profile, version=1, created_at=now, updated_at=now))
            await conn.execute(credentials.insert().values(
                user_id=user_id, password_hash=password_hash, password_changed_at=now,
                must_change_password=new.must_change_password, failed_attempts=0))
    except sa.exc.IntegrityError as exc:
        if is_unique_violation(exc):
            raise conflict("That username is already taken in this institution.", code="username-taken") from None
        raise
    found = await get_user(db, institution_id, user_id)
    assert found is not None
    return found


async def get_user(db: Database, institution_id: str, user_id: str, *, include_deleted: bool = False) -> User | None:
    query = sa.select(*USER_COLUMNS).where(users.c.id == user_id, users.c.institution_id == institution_id)
    if not include_deleted:
        query = query.where(users.c.status != "deleted")
    async with db.connect() as conn:
        row = (await conn.execute(query)).first()
    return _user(row) if row else None


async def require_user(db: Database, institution_id: str, user_id: str) -> User:
    found = await get_user(db, institution_id, user_id)
    if found is None:
        raise not_found("user")
    return found


@dataclass(frozen=True)
class UserFilter:
    role: str | None = None
    status: str | None = None
    department_id: str | None = None


async def list_users(db: Database, institution_id: str, filters: UserFilter, limit: int, cursor: str | None) -> tuple[list[User], str | None]:
    """The institution's accounts (deleted ones only when asked for), by id, one keyset page."""
    query = sa.select(*USER_COLUMNS).where(users.c.institution_id == institution_id)
    query = query.where(users.c.status == filters.status) if filters.status else query.where(users.c.status != "deleted")
    if filters.role:
        query = query.where(users.c.role == filters.role)
    if filters.department_id:
        query = query.where(users.c.department_id == filters.department_id)
    if cursor:
        (after,) = decode_cursor(cursor, 1)
        query = query.where(users.c.id > str(after))
    async with db.connect() as conn:
        rows = (await conn.execute(query.order_by(users.c.id).limit(limit + 1))).all()
    items = [_user(r) for r in rows[:limit]]
    return items, (encode_cursor([items[-1].id]) if len(rows) > limit else None)


async def update_user(db: Database, institution_id: str, user_id: str, changes: dict[str, Any],
                      expected_version: int | None = None) -> User:
    """Apply ``changes`` to a live account; 409 when ``expected_version`` is stale."""
    if not changes:
        return await require_user(db, institution_id, user_id)
    async with db.transaction() as conn:
        if "department_id" in changes:
            await _check_department(conn, institution_id, changes["department_id"])
        query = (users.update().where(users.c.id == user_id, users.c.institution_id == institution_id,
                                      users.c.status != "deleted")
                 .values(**changes, version=users.c.version + 1, updated_at=utcnow()))
        if expected_version is not None:
            query = query.where(users.c.version == expected_version)
        result = await conn.execute(query)
    if result.rowcount == 0:
        current = await require_user(db, institution_id, user_id)  # 404 when it does not exist
        raise conflict(f"The account changed meanwhile (now version {current.version}); reload and retry.",
                       code="version-conflict")
    updated = await get_user(db, institution_id, user_id, include_deleted=True)  # a soft delete is an update too
    assert updated is not None
    return updated


async def set_status(db: Database, institution_id: str, user_id: str, status: str) -> User:
    """Enable, disable or delete (soft); deleting or disabling revokes every refresh token."""
    user = await update_user(db, institution_id, user_id, {"status": status})
    if status != "active":
        await revoke_refresh_tokens(db, user_id, reason=status)
    return user


async def set_password(db: Database, hasher: Hasher, user_id: str, password: str, *, must_change: bool) -> None:
    password_hash = await asyncio.to_thread(hasher.hash, password)
    async with db.transaction() as conn:
        await conn.execute(credentials.update().where(credentials.c.user_id == user_id).values(
            password_hash=password_hash, password_changed_at=utcnow(), must_change_password=must_change,
            failed_attempts=0, locked_until=None))
    await revoke_refresh_tokens(db, user_id, reason="password")


async def revoke_refresh_tokens(db: Database, user_id: str, *, reason: str) -> int:
    async with db.transaction() as conn:
        result = await conn.execute(refresh_tokens.update().where(
            refresh_tokens.c.user_id == user_id, refresh_tokens.c.revoked_at.is_(None)).values(
            revoked_at=utcnow(), revoked_reason=reason))
    return result.rowcount
