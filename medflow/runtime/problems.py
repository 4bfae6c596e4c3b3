"""Rendering errors as problem+json responses and pydantic errors as field errors."""

from __future__ import annotations

from pydantic import ValidationError
from starlette.responses import JSONResponse

from medflow.errors import PROBLEM_CONTENT_TYPE, FieldError, Problem, validation_failed


def field_errors(exc: ValidationError, prefix: str) -> list[FieldError]:
    """Where and what, never the rejected value (it may be patient data)."""
    result = []
    for err in exc.errors(include_input=False, include_url=False, include_context=False):
        loc = ".".join(str(p) for p in (prefix, *err["loc"]))
        result.append(FieldError(loc=loc, msg=err["msg"], type=err["type"]))
    return result


def invalid(exc: ValidationError, prefix: str) -> Problem:
    return validation_failed(field_errors(exc, prefix))


def problem_response(problem: Problem, instance: str | None = None) -> JSONResponse:
    return JSONResponse(problem.to_json(instance), status_code=problem.status,
                        media_type=PROBLEM_CONTENT_TYPE, headers=problem.headers or None)


def internal_error() -> Problem:
    return Problem(500, "internal-error", "Something went wrong on our side; it has been logged.")
