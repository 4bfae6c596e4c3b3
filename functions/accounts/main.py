"""accounts: administrators manage their institution's accounts and login policy (HTTP).

Every operation is the institution administrator's and reaches only their institution:
an id from elsewhere answers 404. Use cases: ``medflow.accounts.users``, ``.policy``.
"""

from __future__ import annotations

import secrets
from typing import Literal

from pydantic import EmailStr, Field

from medflow.accounts import policy as policies
from medflow.accounts.directory import forget_doctor_profiles
from medflow.accounts.schemas import DisplayName, EntityId, Password, Phone, Role, StaffRole, UserOut, Username
from medflow.accounts.sessions import end_all_sessions
from medflow.accounts.users import NewUser, UserFilter, create_user, list_users, require_user, set_password, set_status, update_user
from medflow.audit.trail import audit
from medflow.auth.passwords import PasswordRules
from medflow.auth.principal import ADMIN, Principal
from medflow.errors import Problem
from medflow.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from medflow.runtime.entry import entrypoint
from medflow.runtime.spec import Call, HttpFunction, RequestModel, ResponseModel

spec = HttpFunction("accounts", "Account administration (institution administrators)")
SOURCE = "/medflow/accounts"


class StaffIn(RequestModel):
    username: Username
    role: StaffRole
    display_name: DisplayName
    password: Password
    email: EmailStr | None = None
    phone: Phone | None = None
    department_id: EntityId | None = None
    must_change_password: bool = True


class UserQuery(RequestModel):
    role: Role | None = None
    status: Literal["active", "disabled", "deleted"] | None = None
    department_id: EntityId | None = None
    limit: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    cursor: str | None = Field(None, max_length=512)


class UserPage(ResponseModel):
    items: list[UserOut]
    next_cursor: str | None


class AssignmentIn(RequestModel):
    department_id: EntityId | None
    role: Role


class PasswordResetOut(ResponseModel):
    temporary_password: str = Field(description="Give it to the user privately; they must change it at sign-in.")


class PolicyBody(RequestModel):
    min_length: int = Field(ge=8, le=128)
    require_upper: bool
    require_lower: bool
    require_digit: bool
    require_symbol: bool
    max_failed_attempts: int = Field(ge=1, le=100)
    lockout_s: int = Field(ge=30, le=86400)


class PolicyOut(ResponseModel):
    min_length: int
    require_upper: bool
    require_lower: bool
    require_digit: bool
    require_symbol: bool
    max_failed_attempts: int
    lockout_s: int


async def _audit(call: Call, action: str, user_id: str, details: dict | None = None) -> None:
    """Record the change, and drop cached doctor profiles of the institution (it may be one)."""
    me: Principal = call.caller()
    await forget_doctor_profiles(call.services.cache.cache, me.institution_id)
    await audit(call.services, source=SOURCE, action=action, resource_type="user",
                outcome="success", actor_id=me.user_id, actor_role=me.role, institution_id=me.institution_id,
                resource_id=user_id, details=details)


def _not_yourself(call: Call, user_id: str, what: str) -> None:
    if user_id == call.caller().user_id:
        raise Problem(409, "not-on-yourself", f"You cannot {what} your own account.")


@spec.operation("POST", "/users", access=ADMIN, body=StaffIn, response=UserOut, status=201, errors=(409,),
                summary="Create a doctor or administrator account")
async def create_staff(call: Call) -> UserOut:
    """The password must meet the institution's policy; by default it must be changed at first sign-in."""
    body: StaffIn = call.body
    user = await create_user(call.services.db, call.services.hasher, call.caller().institution_id, NewUser(
        username=body.username, role=body.role, display_name=body.display_name, password=body.password,
        email=body.email, phone=body.phone, department_id=body.department_id,
        must_change_password=body.must_change_password))
    await _audit(call, "account.created", user.id, {"role": user.role})
    return UserOut.of(user)


@spec.operation("GET", "/users", access=ADMIN, query=UserQuery, response=UserPage, summary="List accounts")
async def list_accounts(call: Call) -> UserPage:
    """The institution's accounts, filtered by role, status and department, keyset-paginated."""
    q: UserQuery = call.query
    items, cursor = await list_users(call.services.db, call.caller().institution_id,
                                     UserFilter(q.role, q.status, q.department_id), q.limit, q.cursor)
    return UserPage(items=[UserOut.of(u) for u in items], next_cursor=cursor)


@spec.operation("GET", "/users/{user_id}", access=ADMIN, response=UserOut, summary="Read an account")
async def get_account(call: Call) -> UserOut:
    """One account of the institution."""
    return UserOut.of(await require_user(call.services.db, call.caller().institution_id, call.path["user_id"]))


async def _set_status(call: Call, status: str, action: str) -> UserOut:
    user_id = call.path["user_id"]
    _not_yourself(call, user_id, "change the status of")
    user = await set_status(call.services.db, call.caller().institution_id, user_id, status)
    if status != "active":
        await end_all_sessions(call.services, user_id, status)
    await _audit(call, action, user_id)
    return UserOut.of(user)


@spec.operation("POST", "/users/{user_id}/disable", access=ADMIN, response=UserOut, errors=(409,),
                summary="Disable an account")
async def disable_account(call: Call) -> UserOut:
    """The account can no longer sign in; its sessions end now."""
    return await _set_status(call, "disabled", "account.disabled")


@spec.operation("POST", "/users/{user_id}/enable", access=ADMIN, response=UserOut, errors=(409,),
                summary="Enable an account")
async def enable_account(call: Call) -> UserOut:
    """A disabled account may sign in again."""
    return await _set_status(call, "active", "account.enabled")


@spec.operation("DELETE", "/users/{user_id}", access=ADMIN, response=None, status=204, errors=(409,),
                summary="Delete an account")
async def delete_account(call: Call) -> None:
    """Soft delete: the account disappears from lists and cannot sign in; its history stays."""
    await _set_status(call, "deleted", "account.deleted")


@spec.operation("POST", "/users/{user_id}/password-reset", access=ADMIN, response=PasswordResetOut,
                summary="Reset an account's password")
async def reset_password(call: Call) -> PasswordResetOut:
    """Sets a random temporary password the user must change; their sessions end now."""
    user = await require_user(call.services.db, call.caller().institution_id, call.path["user_id"])
    temporary = secrets.token_urlsafe(12) + "a1A"
    await set_password(call.services.db, call.services.hasher, user.id, temporary, must_change=True)
    await end_all_sessions(call.services, user.id, "password-reset")
    await _audit(call, "account.password_reset", user.id)
    return PasswordResetOut(temporary_password=temporary)


@spec.operation("PUT", "/users/{user_id}/assignment", access=ADMIN, body=AssignmentIn, response=UserOut,
                errors=(409,), summary="Bind department and role")
async def assign(call: Call) -> UserOut:
    """Department (of this institution) and role; a role change ends the account's sessions
    so the next token carries the new role."""
    user_id, body = call.path["user_id"], call.body
    _not_yourself(call, user_id, "change the role of")
    before = await require_user(call.services.db, call.caller().institution_id, user_id)
    user = await update_user(call.services.db, call.caller().institution_id, user_id,
                             {"department_id": body.department_id, "role": body.role})
    if before.role != user.role or before.department_id != user.department_id:
        await end_all_sessions(call.services, user_id, "assignment")
    await _audit(call, "account.assigned", user_id, {"role": user.role, "department_id": user.department_id})
    return UserOut.of(user)


def _policy_out(policy: policies.LoginPolicy) -> PolicyOut:
    r = policy.rules
    return PolicyOut(min_length=r.min_length, require_upper=r.require_upper, require_lower=r.require_lower,
                     require_digit=r.require_digit, require_symbol=r.require_symbol,
                     max_failed_attempts=policy.max_failed_attempts, lockout_s=policy.lockout_s)


@spec.operation("GET", "/login-policy", access=ADMIN, response=PolicyOut, summary="Read the login policy")
async def get_login_policy(call: Call) -> PolicyOut:
    """Password rules and lockout of the institution (defaults until set)."""
    return _policy_out(await policies.get_policy(call.services.db, call.caller().institution_id))


@spec.operation("PUT", "/login-policy", access=ADMIN, body=PolicyBody, response=PolicyOut, summary="Set the login policy")
async def set_login_policy(call: Call) -> PolicyOut:
    """Applies from the next sign-in or password change on."""
    b: PolicyBody = call.body
    policy = policies.LoginPolicy(PasswordRules(b.min_length, b.require_upper, b.require_lower, b.require_digit,
                                                b.require_symbol), b.max_failed_attempts, b.lockout_s)
    me = call.caller()
    await policies.set_policy(call.services.db, me.institution_id, policy, me.user_id)
    await audit(call.services, source=SOURCE, action="login_policy.updated",
                resource_type="institution", outcome="success", actor_id=me.user_id, actor_role=me.role,
                institution_id=me.institution_id, resource_id=me.institution_id, details=b.model_dump())
    return _policy_out(policy)


accounts = entrypoint(spec)
