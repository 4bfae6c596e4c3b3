"""The authenticated caller and the authentication hook every function goes through.

The accounts issue supplies a JWT authenticator; until then the platform's only
authenticator accepts nobody, so every non-public operation answers 401.
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

    @staticmethod
    def anyone() -> "Access":
        return Access(public=True)

    @staticmethod
    def roles_(*roles: str) -> "Access":
        return Access(roles=frozenset(roles))

    def describe(self) -> str:
        return "public" if self.public else ", ".join(sorted(self.roles))


PUBLIC = Access.anyone()
