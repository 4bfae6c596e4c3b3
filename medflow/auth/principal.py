"""The authenticated caller and the authentication hook every function goes through.

The platform authenticates with JWT access tokens (``medflow.auth.jwt_authenticator``);
``NobodyAuthenticator`` is for processes that serve only public operations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol


@dataclass(frozen=True)
class Principal:
    user_id: str
    role: str                  # admin | doctor | patient
    institution_id: str
    department_id: str | None = None
    token_id: str | None = None          # the access token's jti (logout denies it)
    token_expires_at: int | None = None
    password_change_required: bool = False   # signed in with a temporary password


class Authenticator(Protocol):
    async def __call__(self, headers: Mapping[str, str]) -> Principal | None:
        """The caller behind the request headers; None when no credentials were given.
        Raises a 401 Problem for credentials that are present but invalid."""


class NobodyAuthenticator:
    """Accepts no credentials: protected operations answer 401."""

    async def __call__(self, headers: Mapping[str, str]) -> Principal | None:
        return None


@dataclass(frozen=True)
class Access:
    """Who may call an operation, declared next to it."""

    public: bool = False
    roles: frozenset[str] = frozenset()
    before_password_change: bool = False   # callable with a temporary password (change it, sign out)

    @staticmethod
    def anyone() -> "Access":
        return Access(public=True)

    @staticmethod
    def roles_(*roles: str) -> "Access":
        return Access(roles=frozenset(roles))

    def allows(self, role: str | None) -> bool:
        return self.public or (role is not None and role in self.roles)

    def describe(self) -> str:
        return "public" if self.public else ", ".join(sorted(self.roles))


PUBLIC = Access.anyone()
ADMIN = Access.roles_("admin")
SIGNED_IN = Access.roles_("admin", "doctor", "patient")
# What a user signed in with a temporary password may do: read themselves, change it, sign out.
SIGNED_IN_TEMPORARY = Access(roles=SIGNED_IN.roles, before_password_change=True)
STAFF = Access.roles_("admin", "doctor")
