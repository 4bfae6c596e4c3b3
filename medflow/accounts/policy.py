"""The institution's password and lockout policy: a row per institution, defaults otherwise.

Changes apply from the next login or password change on: nothing stored is rewritten.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from medflow.auth.passwords import PasswordRules
from medflow.db.engine import Database
from medflow.db.schema import login_policies
from medflow.ids import utcnow


@dataclass(frozen=True)
class LoginPolicy:
    rules: PasswordRules = PasswordRules()
    max_failed_attempts: int = 5
    lockout_s: int = 900


DEFAULT_POLICY = LoginPolicy()


async def get_policy(db: Database, institution_id: str) -> LoginPolicy:
    async with db.connect() as conn:
        row = (await conn.execute(sa.select(login_policies).where(login_policies.c.institution_id == institution_id))).mappings().first()
    if row is None:
        return DEFAULT_POLICY
    rules = PasswordRules(row["min_length"], row["require_upper"], row["require_lower"], row["require_digit"],
                          row["require_symbol"])
    return LoginPolicy(rules, row["max_failed_attempts"], row["lockout_s"])


async def set_policy(db: Database, institution_id: str, policy: LoginPolicy, updated_by: str) -> None:
    """Insert or replace the institution's policy."""
    values = {"min_length": policy.rules.min_length, "require_upper": policy.rules.require_upper,
              "require_lower": policy.rules.require_lower, "require_digit": policy.rules.require_digit,
              "require_symbol": policy.rules.require_symbol, "max_failed_attempts": policy.max_failed_attempts,
              "lockout_s": policy.lockout_s, "updated_at": utcnow(), "updated_by": updated_by}
    async with db.transaction() as conn:
        updated = await conn.execute(login_policies.update().where(login_policies.c.institution_id == institution_id)
                                     .values(**values))
        if updated.rowcount == 0:
            await conn.execute(login_policies.insert().values(institution_id=institution_id, **values))
