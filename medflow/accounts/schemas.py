"""Field rules shared by the account functions' request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import EmailStr, Field, StringConstraints

from medflow.accounts.users import User
from medflow.runtime.spec import ResponseModel

# pydantic checks the pattern before it changes the case: the patterns accept either case.
Username = Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$")]
InstitutionCode = Annotated[str, StringConstraints(strip_whitespace=True, to_upper=True, pattern=r"^[A-Za-z0-9_-]{2,32}$")]
# Passwords are taken exactly as typed: no whitespace stripping.
Password = Annotated[str, StringConstraints(strip_whitespace=False, min_length=1, max_length=128)]
DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9 ()-]{5,32}$")]
EntityId = Annotated[str, StringConstraints(pattern=r"^[0-9A-HJKMNP-TV-Z]{26}$")]
StaffRole = Literal["doctor", "admin"]
Role = Literal["doctor", "admin", "patient"]
Profile = Annotated[dict[str, Any], Field(max_length=50)]


class UserOut(ResponseModel):
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

    @staticmethod
    def of(user: User) -> "UserOut":
        return UserOut(**vars(user))


__all__ = ["Username", "InstitutionCode", "Password", "DisplayName", "Phone", "EntityId", "StaffRole", "Role",
           "Profile", "UserOut", "EmailStr"]
