"""Errors that cross a boundary, rendered as ``application/problem+json`` (RFC 9457).

Each error has a stable ``code`` (also the last segment of its ``type`` URI), a status,
and a human ``detail``. Details never carry patient data, SQL or stack traces.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError

PROBLEM_BASE = "https://medflow.dev/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"


@dataclass
class FieldError:
    """One invalid input field: where it is, and what is wrong (never its value)."""

    loc: str
    msg: str
    type: str = "invalid"


@dataclass
class Problem(Exception):
    """An error with its HTTP status and stable code."""

    status: int
    code: str
    detail: str
    title: str = ""
    errors: list[FieldError] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.detail)
        if not self.title:
            self.title = self.code.replace("-", " ").capitalize()

    def to_json(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.code,
            "title": self.title,
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = [{"loc": e.loc, "msg": e.msg, "type": e.type} for e in self.errors]
        return body


def field_errors(exc: "ValidationError", prefix: str) -> list[FieldError]:
    """A pydantic error as field errors: where and what, never the rejected value."""
    result = []
    for err in exc.errors(include_input=False, include_url=False, include_context=False):
        loc = ".".join(str(p) for p in (prefix, *err["loc"]))
        result.append(FieldError(loc=loc, msg=err["msg"], type=err["type"]))
    return result


def bad_request(detail: str, code: str = "bad-request") -> Problem:
    return Problem(400, code, detail)


def unauthenticated(detail: str = "Authentication is required.") -> Problem:
    return Problem(401, "unauthenticated", detail, headers={"WWW-Authenticate": "Bearer"})


def forbidden(detail: str = "You are not allowed to do this.") -> Problem:
    return Problem(403, "forbidden", detail)


def not_found(what: str = "resource") -> Problem:
    return Problem(404, "not-found", f"The {what} does not exist or is not visible to you.")


def conflict(detail: str, code: str = "conflict") -> Problem:
    return Problem(409, code, detail)


def too_large(limit: int) -> Problem:
    return Problem(413, "payload-too-large", f"The request body exceeds {limit} bytes.")


def unsupported_media_type(expected: str) -> Problem:
    return Problem(415, "unsupported-media-type", f"The request body must be {expected}.")


def validation_failed(errors: list[FieldError], detail: str = "The request is not valid.") -> Problem:
    return Problem(422, "validation-failed", detail, errors=errors)


def rate_limited(retry_after_s: float) -> Problem:
    seconds = max(1, int(retry_after_s + 0.999))
    return Problem(429, "rate-limited", "Too many requests; try again later.", headers={"Retry-After": str(seconds)})


class TransientError(Exception):
    """A failure that may succeed if retried (network, time-out, unavailable dependency)."""


class PermanentError(Exception):
    """A failure that will never succeed on retry (invalid event, unknown resource)."""
