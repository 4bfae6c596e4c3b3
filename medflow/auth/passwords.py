"""Argon2id password hashing (argon2-cffi) and the institution's password rules."""

from __future__ import annotations

import string
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from medflow.errors import FieldError, validation_failed

MAX_PASSWORD_LENGTH = 128
# A short list of passwords that pass length and class rules yet are guessed first.
COMMON = {"password1!", "password123!", "p@ssw0rd123", "qwerty123!", "welcome123!", "admin12345!", "letmein123!",
          "iloveyou123!", "changeme123!", "medflow123!"}


class Hasher:
    """Argon2id with configurable cost; ``needs_rehash`` says when a stored hash is outdated."""

    def __init__(self, time_cost: int, memory_kib: int, parallelism: int) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
        self._dummy = self._hasher.hash("medflow-timing-equaliser")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def burn(self, password: str) -> None:
        """Spend the time of one verification (unknown user): answers take as long either way."""
        self.verify(self._dummy, password)

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._hasher.check_needs_rehash(stored_hash)


@dataclass(frozen=True)
class PasswordRules:
    min_length: int = 10
    require_upper: bool = True
    require_lower: bool = True
    require_digit: bool = True
    require_symbol: bool = False

    def violations(self, password: str, username: str | None = None) -> list[str]:
        problems = []
        if len(password) < self.min_length:
            problems.append(f"must be at least {self.min_length} characters")
        if len(password) > MAX_PASSWORD_LENGTH:
            problems.append(f"must be at most {MAX_PASSWORD_LENGTH} characters")
        if self.require_upper and not any(c.isupper() for c in password):
            problems.append("must contain an upper-case letter")
        if self.require_lower and not any(c.islower() for c in password):
            problems.append("must contain a lower-case letter")
        if self.require_digit and not any(c.isdigit() for c in password):
            problems.append("must contain a digit")
        if self.require_symbol and not any(c in string.punctuation or not c.isalnum() for c in password):
            problems.append("must contain a symbol")
        if password.lower() in COMMON or (username and username.lower() in password.lower()):
            problems.append("is too easy to guess")
        return problems

    def check(self, password: str, field: str, username: str | None = None) -> None:
        """Raise a 422 listing every rule the password breaks (never echoing it)."""
        problems = self.violations(password, username)
        if problems:
            raise validation_failed([FieldError(field, "Password " + "; ".join(problems) + ".", "weak_password")],
                                    "The password does not meet the institution's policy.")
