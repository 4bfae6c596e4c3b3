"""Rendering errors as problem+json responses and pydantic errors as field errors."""

from __future__ import annotations

from pydantic import ValidationError
from starlette.responses import JSONResponse

from medflow.errors import PROBLEM_CONTENT_TYPE, Problem, field_errors, validation_failed


def invalid(exc: ValidationError, prefix: str) -> Problem:
    return validation_failed(field_errors(exc, prefix))


def problem_response(problem: Problem, instance: str | None = None) -> JSONResponse:
    return JSONResponse(problem.to_json(instance), status_code=problem.status,
                        media_type=PROBLEM_CONTENT_TYPE, headers=problem.headers or None)


def internal_error() -> Problem:
    return Problem(500, "internal-error", "Something went wrong on our side; it has been logged.")
