"""auth: sign-up, sign-in and the caller's own account (HTTP).

Use cases: ``medflow.accounts.sessions`` and ``medflow.accounts.users``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import EmailStr, Field, field_validator

from medflow.accounts import sessions
from medflow.accounts.directory import forget_doctor_profiles
from medflow.accounts.schemas import DisplayName, InstitutionCode, Password, Phone, Profile, UserOut, Username
from medflow.accounts.users import NewUser, create_user, institution_by_code, require_user, update_user
from medflow.audit.trail import audit
from medflow.auth.principal import PUBLIC, SIGNED_IN, SIGNED_IN_TEMPORARY
from medflow.errors import FieldError, validation_failed
from medflow.runtime.entry import entrypoint
from medflow.runtime.spec import Call, HttpFunction, RequestModel, ResponseModel

spec = HttpFunction("auth", "Sign-up, sign-in, sessions and your own account")
SOURCE = "/medflow/auth"


class RegisterIn(RequestModel):
    institution_code: InstitutionCode
    username: Username
    password: Password
    display_name: DisplayName
    email: EmailStr | None = None
    phone: Phone | None = None


class LoginIn(RequestModel):
    institution_code: InstitutionCode
    username: Username
    password: Password


class RefreshIn(RequestModel):
    refresh_token: str = Field(min_length=1, max_length=256)


class LogoutIn(RequestModel):
    refresh_token: str | None = Field(None, max_length=256)


class PasswordChangeIn(RequestModel):
    current_password: Password
    new_password: Password


class ProfileIn(RequestModel):
    display_name: DisplayName | None = None
    email: EmailStr | None = None
    phone: Phone | None = None
    profile: Profile | None = None
    version: int | None = Field(None, ge=1, description="The version you read; 409 if it changed meanwhile.")

    @field_validator("display_name")
    @classmethod
    def _display_name_not_null(cls, value: str | None) -> str:
        if value is None:
            raise ValueError("display_name cannot be removed")
        return value


class TokensOut(ResponseModel):
    token_type: str = "Bearer"
    access_token: str
    access_expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime
    user_id: str
    role: str
    institution_id: str
    password_change_required: bool


def _tokens(t: sessions.Tokens) -> TokensOut:
    return TokensOut(access_token=t.access_token, access_expires_at=t.access_expires_at, refresh_token=t.refresh_token,
                     refresh_expires_at=t.refresh_expires_at, user_id=t.principal.user_id, role=t.principal.role,
                     institution_id=t.principal.institution_id, password_change_required=t.password_change_required)


@spec.operation("POST", "/register", access=PUBLIC, body=RegisterIn, response=UserOut, status=201, errors=(409,),
                summary="Register as a patient")
async def register(call: Call) -> UserOut:
    """A patient creates their own account in an institution; the password must meet its policy."""
    body: RegisterIn = call.body
    institution_id = await institution_by_code(call.services.db, body.institution_code)
    if institution_id is None:
        raise validation_failed([FieldError("body.institution_code", "No such institution.", "not_found")])
    user = await create_user(call.services.db, call.services.hasher, institution_id, NewUser(
        username=body.username, role="patient", display_name=body.display_name, password=body.password,
        email=body.email, phone=body.phone))
    await audit(call.services, source=SOURCE, action="account.registered",
                resource_type="user", outcome="success", actor_id=user.id, actor_role="patient",
                institution_id=institution_id, resource_id=user.id)
    return UserOut.of(user)


@spec.operation("POST", "/login", access=PUBLIC, body=LoginIn, response=TokensOut, errors=(401, 403, 429),
                summary="Sign in")
async def login(call: Call) -> TokensOut:
    """Password sign-in: a short-lived access token and a rotating refresh token.
    Rate-limited per account and per client address; locks after repeated failures."""
    body: LoginIn = call.body
    return _tokens(await sessions.login(call.services, body.institution_code, body.username, body.password,
                                        call.client_address))


@spec.operation("POST", "/refresh", access=PUBLIC, body=RefreshIn, response=TokensOut, errors=(401,),
                summary="Exchange a refresh token")
async def refresh(call: Call) -> TokensOut:
    """Rotation: the token is used up and a new pair issued. Presenting a used token again
    revokes the whole session family."""
    return _tokens(await sessions.refresh(call.services, call.body.refresh_token))


@spec.operation("POST", "/logout", access=SIGNED_IN_TEMPORARY, body=LogoutIn, response=None, status=204, summary="Sign out")
async def logout(call: Call) -> None:
    """The access token stops working now; with the refresh token, its session family too."""
    await sessions.logout(call.services, call.caller(), call.body.refresh_token)


@spec.operation("POST", "/password", access=SIGNED_IN_TEMPORARY, body=PasswordChangeIn, response=None, status=204,
                errors=(403,), summary="Change your password")
async def change_password(call: Call) -> None:
    """Needs the current password; every session ends, so sign in again with the new one."""
    await sessions.change_password(call.services, call.caller(), call.body.current_password, call.body.new_password)


@spec.operation("GET", "/me", access=SIGNED_IN_TEMPORARY, response=UserOut, errors=(404,), summary="Your account")
async def get_me(call: Call) -> UserOut:
    """The caller's own account and profile."""
    me = call.caller()
    return UserOut.of(await require_user(call.services.db, me.institution_id, me.user_id))


@spec.operation("PATCH", "/me", access=SIGNED_IN, body=ProfileIn, response=UserOut, errors=(404, 409),
                summary="Edit your profile")
async def update_me(call: Call) -> UserOut:
    """Display name, contact details and free profile fields; role, status and department
    are the administrator's."""
    me, body = call.caller(), call.body
    changes: dict[str, Any] = body.model_dump(exclude_unset=True, exclude={"version"})
    user = await update_user(call.services.db, me.institution_id, me.user_id, changes, expected_version=body.version)
    if me.role == "doctor":
        await forget_doctor_profiles(call.services.cache.cache, me.institution_id)
    await audit(call.services, source=SOURCE, action="account.profile_updated",
                resource_type="user", outcome="success", actor_id=me.user_id, actor_role=me.role,
                institution_id=me.institution_id, resource_id=me.user_id, details={"fields": sorted(changes)})
    return UserOut.of(user)


auth = entrypoint(spec)
