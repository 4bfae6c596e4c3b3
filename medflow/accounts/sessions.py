"""Signing in and out: login with lockout and rate limits, refresh-token rotation with reuse
detection, logout, password change. Every attempt is recorded; every outcome audited.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa

from medflow.accounts.policy import LoginPolicy, get_policy
from medflow.accounts.users import require_user, revoke_refresh_tokens, set_password
from medflow.audit.trail import audit
from medflow.auth.principal import Principal
from medflow.auth.tokens import (compose_refresh_token, hash_secret, issue_access_token, new_refresh_secret,
                                 secret_matches, split_refresh_token)
from medflow.db.schema import credentials, institutions, login_attempts, refresh_tokens, users
from medflow.errors import FieldError, Problem, rate_limited, validation_failed
from medflow.ids import new_id, utcnow

if TYPE_CHECKING:
    from medflow.bootstrap import Services

SOURCE = "/medflow/auth"
RATE_WINDOW_S = 60.0


@dataclass(frozen=True)
class Tokens:
    access_token: str
    access_expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime
    principal: Principal
    password_change_required: bool


def invalid_credentials() -> Problem:
    return Problem(401, "invalid-credentials", "The institution, username or password is not right.")


def _refresh_problem(code: str, detail: str) -> Problem:
    return Problem(401, code, detail)


async def _record_attempt(services: "Services", institution_id: str | None, user_id: str | None,
                          address: str | None, outcome: str) -> None:
    async with services.db.transaction() as conn:
        await conn.execute(login_attempts.insert().values(id=new_id(), institution_id=institution_id, user_id=user_id,
                                                          client_address=address, outcome=outcome, attempted_at=utcnow()))
    await audit(services, source=SOURCE, action="login", resource_type="user",
                outcome="success" if outcome == "success" else "failure", actor_id=user_id, institution_id=institution_id,
                resource_id=user_id, details={"reason": outcome})


async def _check_rate(services: "Services", institution_code: str, username: str, address: str | None) -> None:
    s = services.settings
    limits = [(f"login:account:{institution_code}:{username}", s.login_rate_per_account)]
    if address:
        limits.append((f"login:address:{address}", s.login_rate_per_address))
    for key, limit in limits:
        decision = await services.cache.rate_limiter.hit(key, limit, RATE_WINDOW_S)
        if not decision.allowed:
            await _record_attempt(services, None, None, address, "rate_limited")
            raise rate_limited(decision.retry_after_s)


async def _find_login(services: "Services", institution_code: str, username: str):
    query = (sa.select(users.c.id, users.c.institution_id, users.c.department_id, users.c.role, users.c.status,
                       credentials.c.password_hash, credentials.c.failed_attempts, credentials.c.locked_until,
                       credentials.c.must_change_password)
             .select_from(users.join(institutions, institutions.c.id == users.c.institution_id)
                          .join(credentials, credentials.c.user_id == users.c.id))
             .where(institutions.c.code == institution_code, institutions.c.active == sa.true(),
                    users.c.username == username, users.c.status != "deleted"))
    async with services.db.connect() as conn:
        return (await conn.execute(query)).mappings().first()


async def _register_failure(services: "Services", user_id: str, policy: LoginPolicy, now: datetime) -> bool:
    """Count a wrong password; lock the account when the policy's limit is reached. True when locked now."""
    async with services.db.transaction() as conn:
        await conn.execute(credentials.update().where(credentials.c.user_id == user_id)
                           .values(failed_attempts=credentials.c.failed_attempts + 1))
        failed = (await conn.execute(sa.select(credentials.c.failed_attempts)
                                     .where(credentials.c.user_id == user_id))).scalar_one()
        if failed < policy.max_failed_attempts:
            return False
        await conn.execute(credentials.update().where(credentials.c.user_id == user_id)
                           .values(failed_attempts=0, locked_until=now + timedelta(seconds=policy.lockout_s)))
        return True


def _locked(locked_until: datetime, now: datetime) -> Problem:
    problem = rate_limited((locked_until - now).total_seconds())
    problem.code, problem.title = "account-locked", "Account locked"
    problem.detail = "Too many failed sign-ins: the account is locked for a while."
    return problem


async def login(services: "Services", institution_code: str, username: str, password: str, address: str | None) -> Tokens:
    await _check_rate(services, institution_code, username, address)
    row = await _find_login(services, institution_code, username)
    hasher = services.hasher
    if row is None:
        await asyncio.to_thread(hasher.burn, password)  # the same time as a wrong password
        await _record_attempt(services, None, None, address, "unknown_user")
        raise invalid_credentials()
    now = utcnow()
    if row["locked_until"] is not None and row["locked_until"] > now:
        await _record_attempt(services, row["institution_id"], row["id"], address, "locked")
        raise _locked(row["locked_until"], now)
    if not await asyncio.to_thread(hasher.verify, row["password_hash"], password):
        locked_now = await _register_failure(services, row["id"], await get_policy(services.db, row["institution_id"]), now)
        await _record_attempt(services, row["institution_id"], row["id"], address, "locked_now" if locked_now else "bad_password")
        raise invalid_credentials()
    if row["status"] != "active":
        await _record_attempt(services, row["institution_id"], row["id"], address, "disabled")
        raise Problem(403, "account-disabled", "This account is disabled; ask your institution's administrator.")
    changes: dict = {"failed_attempts": 0, "locked_until": None, "last_login_at": now}
    if hasher.needs_rehash(row["password_hash"]):
        changes["password_hash"] = await asyncio.to_thread(hasher.hash, password)
    async with services.db.transaction() as conn:
        await conn.execute(credentials.update().where(credentials.c.user_id == row["id"]).values(**changes))
    principal = Principal(row["id"], row["role"], row["institution_id"], row["department_id"],
                          password_change_required=row["must_change_password"])
    tokens = await _issue(services, principal, family_id=new_id(), must_change=row["must_change_password"])
    await _record_attempt(services, row["institution_id"], row["id"], address, "success")
    return tokens


async def _issue(services: "Services", principal: Principal, *, family_id: str, must_change: bool, conn=None) -> Tokens:
    s, now = services.settings, utcnow()
    access = issue_access_token(services.keys, principal, issuer=s.jwt_issuer, now=now, ttl_s=s.access_token_ttl_s)
    token_id, secret = new_id(), new_refresh_secret()
    expires = now + timedelta(seconds=s.refresh_token_ttl_s)
    row = {"id": token_id, "family_id": family_id, "user_id": principal.user_id, "secret_hash": hash_secret(secret),
           "issued_at": now, "expires_at": expires}
    if conn is not None:
        await conn.execute(refresh_tokens.insert().values(**row))
    else:
        async with services.db.transaction() as own:
            await own.execute(refresh_tokens.insert().values(**row))
    return Tokens(access.token, access.expires_at, compose_refresh_token(token_id, secret), expires, principal, must_change)


async def _revoke_family(services: "Services", family_id: str, reason: str) -> None:
    async with services.db.transaction() as conn:
        await conn.execute(refresh_tokens.update().where(refresh_tokens.c.family_id == family_id,
                                                         refresh_tokens.c.revoked_at.is_(None))
                           .values(revoked_at=utcnow(), revoked_reason=reason))


async def refresh(services: "Services", token: str) -> Tokens:
    """Rotate: the presented token is used up and a new one of the same family issued. A token
    presented a second time means it leaked: the whole family and the user's access tokens go."""
    parts = split_refresh_token(token)
    if parts is None:
        raise _refresh_problem("refresh-token-invalid", "The refresh token is not valid.")
    token_id, secret = parts
    query = (sa.select(refresh_tokens, users.c.role, users.c.status, users.c.institution_id, users.c.department_id,
                       credentials.c.must_change_password)
             .select_from(refresh_tokens.join(users, users.c.id == refresh_tokens.c.user_id)
                          .join(credentials, credentials.c.user_id == users.c.id))
             .where(refresh_tokens.c.id == token_id))
    async with services.db.connect() as conn:
        row = (await conn.execute(query)).mappings().first()
    if row is None or not secret_matches(secret, row["secret_hash"]):
        raise _refresh_problem("refresh-token-invalid", "The refresh token is not valid.")
    now = utcnow()
    if row["revoked_at"] is not None:
        raise _refresh_problem("refresh-token-revoked", "The session has ended; sign in again.")
    if row["used_at"] is not None:
        await _reuse_detected(services, row)
    if row["expires_at"] <= now:
        raise _refresh_problem("refresh-token-expired", "The session has expired; sign in again.")
    if row["status"] != "active":
        await _revoke_family(services, row["family_id"], row["status"])
        raise _refresh_problem("refresh-token-revoked", "The session has ended; sign in again.")
    principal = Principal(row["user_id"], row["role"], row["institution_id"], row["department_id"],
                          password_change_required=row["must_change_password"])
    async with services.db.transaction() as conn:
        used = await conn.execute(refresh_tokens.update().where(
            refresh_tokens.c.id == token_id, refresh_tokens.c.used_at.is_(None),
            refresh_tokens.c.revoked_at.is_(None)).values(used_at=now))
        if used.rowcount == 1:
            return await _issue(services, principal, family_id=row["family_id"],
                                must_change=row["must_change_password"], conn=conn)
    await _reuse_detected(services, row)  # a concurrent refresh used it first


async def _reuse_detected(services: "Services", row) -> None:
    await _revoke_family(services, row["family_id"], "reuse")
    await services.revocations.revoke_user(row["user_id"], services.settings.access_token_ttl_s)
    await audit(services, source=SOURCE, action="session.refresh_reuse", resource_type="user",
                outcome="denied", actor_id=row["user_id"], institution_id=row["institution_id"],
                resource_id=row["user_id"], details={"family_id": row["family_id"]})
    raise _refresh_problem("refresh-token-reused", "This refresh token was already used; the session is revoked.")


async def logout(services: "Services", principal: Principal, refresh_token: str | None) -> None:
    """End this session: its access token is denied and, when given, its refresh family revoked."""
    if principal.token_id and principal.token_expires_at:
        await services.revocations.deny(principal.token_id, principal.token_expires_at)
    if refresh_token and (parts := split_refresh_token(refresh_token)):
        async with services.db.connect() as conn:
            row = (await conn.execute(sa.select(refresh_tokens.c.family_id, refresh_tokens.c.secret_hash).where(
                refresh_tokens.c.id == parts[0], refresh_tokens.c.user_id == principal.user_id))).first()
        if row and secret_matches(parts[1], row.secret_hash):
            await _revoke_family(services, row.family_id, "logout")
    await audit(services, source=SOURCE, action="session.logout", resource_type="user",
                outcome="success", actor_id=principal.user_id, actor_role=principal.role,
                institution_id=principal.institution_id, resource_id=principal.user_id)


async def end_all_sessions(services: "Services", user_id: str, reason: str) -> None:
    """Every refresh token and every access token of the user stop working now."""
    await revoke_refresh_tokens(services.db, user_id, reason=reason)
    await services.revocations.revoke_user(user_id, services.settings.access_token_ttl_s)


async def change_password(services: "Services", principal: Principal, current: str, new: str) -> None:
    """The caller changes their own password; every session of theirs ends (sign in again)."""
    user = await require_user(services.db, principal.institution_id, principal.user_id)
    async with services.db.connect() as conn:
        stored = (await conn.execute(sa.select(credentials.c.password_hash)
                                     .where(credentials.c.user_id == user.id))).scalar_one()
    if not await asyncio.to_thread(services.hasher.verify, stored, current):
        await audit(services, source=SOURCE, action="account.password_change",
                    resource_type="user", outcome="failure", actor_id=user.id, actor_role=user.role,
                    institution_id=user.institution_id, resource_id=user.id, details={"reason": "wrong_password"})
        raise Problem(403, "wrong-password", "The current password is not right.")
    policy = await get_policy(services.db, user.institution_id)
    policy.rules.check(new, "body.new_password", user.username)
    if new == current:
        raise validation_failed([FieldError("body.new_password", "The new password must differ from the current one.",
                                            "same_password")])
    await set_password(services.db, services.hasher, user.id, new, must_change=False)
    await end_all_sessions(services, user.id, "password")
    await audit(services, source=SOURCE, action="account.password_change", resource_type="user",
                outcome="success", actor_id=user.id, actor_role=user.role, institution_id=user.institution_id,
                resource_id=user.id)
