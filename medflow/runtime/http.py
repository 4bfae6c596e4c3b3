"""The shared middleware of every HTTP function, in one request pipeline:

trace context → route → authenticate → authorise → size limit → content type → JSON →
validate query/body → handler → validate response → problem+json on any error →
one structured log line and metrics. Also ``/healthz``, ``/metrics``, ``/openapi.json``.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from typing import Any, AsyncIterator

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.background import BackgroundTask
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse

from medflow.auth.principal import Access, Principal
from medflow.errors import (FieldError, Problem, TransientError, bad_request, forbidden, not_found, too_large,
                            unauthenticated, unsupported_media_type, validation_failed)
from medflow.runtime import metrics
from medflow.runtime.body import parse_json, read_limited
from medflow.runtime.openapi import function_document
from medflow.runtime.problems import internal_error, invalid, problem_response
from medflow.runtime.services import ServiceHolder
from medflow.runtime.spec import Answer, Call, EventStream, FileAnswer, HttpFunction, Operation, RenderedJson
from medflow.tracing import activate, child_of, deactivate

log = logging.getLogger("medflow.http")
_BODY_METHODS = {"POST", "PUT", "PATCH"}


def authorize(access: Access, principal: Principal | None) -> None:
    """401 without a caller, 403 for a caller whose role is not declared on the operation."""
    if access.public:
        return
    if principal is None:
        raise unauthenticated()
    if not access.allows(principal.role):
        raise forbidden()
    if principal.password_change_required and not access.before_password_change:
        problem = forbidden("Change your temporary password first (POST /api/auth/password).")
        problem.code = "password-change-required"
        raise problem


def client_address(request: Request, trusted_hops: int) -> str | None:
    """The caller's address: the socket peer, or the address ``trusted_hops`` proxies report."""
    if trusted_hops:
        forwarded = [part.strip() for part in request.headers.get("x-forwarded-for", "").split(",") if part.strip()]
        if len(forwarded) >= trusted_hops:
            return forwarded[-trusted_hops][:64]
    return request.client.host if request.client else None


def where(exc: BaseException) -> str:
    """File and line of the innermost frame: enough to debug, no message (it may hold data)."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"


def _sse_error(problem: Problem) -> bytes:
    body = json.dumps(problem.to_json(), ensure_ascii=False, separators=(",", ":"))
    return f"event: error\ndata: {body}\n\n".encode()


class HttpRuntime:
    def __init__(self, spec: HttpFunction, holder: ServiceHolder) -> None:
        self.spec = spec
        self.holder = holder

    async def handle(self, request: Request, subpath: str | None = None) -> Response:
        path = subpath if subpath is not None else request.scope["path"]
        path = path or "/"
        trace = child_of(request.headers.get("traceparent"))
        token = activate(trace)
        started = time.perf_counter()
        operation, code = "-", None
        try:
            if path == "/healthz" and request.method == "GET":
                operation, response = "healthz", await self._health()
            elif path == "/metrics" and request.method == "GET":
                body, content_type = metrics.exposition()
                operation, response = "metrics", Response(body, media_type=content_type)
            elif path == "/openapi.json" and request.method == "GET":
                operation, response = "openapi", JSONResponse(function_document(self.spec))
            else:
                op, params = self._route(request.method, path)
                operation = op.operation_id
                response = await self._run(op, params, request, trace)
        except Problem as problem:
            code, response = problem.code, problem_response(problem)
        except TransientError as exc:  # a dependency is down or slow: the client may retry
            log.warning("dependency unavailable", extra={"function": self.spec.name, "operation": operation,
                                                         "error_type": type(exc).__name__})
            problem = Problem(503, "temporarily-unavailable", "A service this needs is unavailable; try again shortly.",
                              headers={"Retry-After": "5"})
            code, response = problem.code, problem_response(problem)
        except Exception as exc:
            log.error("unhandled error", extra={"function": self.spec.name, "operation": operation,
                                                "error_type": type(exc).__name__, "where": where(exc)})
            problem = internal_error()
            code, response = problem.code, problem_response(problem)
        finally:
            deactivate(token)
        elapsed = time.perf_counter() - started
        response.headers["traceparent"] = trace.traceparent
        self._record(request, operation, response.status_code, code, elapsed, trace.trace_id)
        return response

    def _route(self, method: str, path: str) -> tuple[Operation, dict[str, str]]:
        op, params, path_exists = self.spec.match(method, path)
        if op is None:
            if path_exists:
                raise Problem(405, "method-not-allowed", f"{method} is not allowed here.")
            raise not_found("operation")
        return op, params

    async def _run(self, op: Operation, params: dict[str, str], request: Request, trace) -> Response:
        services = await self.holder.get()
        principal = await services.authenticator(request.headers)
        authorize(op.access, principal)
        query = self._query(op, request)
        stream = None
        if op.consumes:
            stream = self._stream(op, request, services.settings.max_body_bytes)
            body = None
        else:
            body = await self._body(op, request, services.settings.max_body_bytes)
        address = client_address(request, services.settings.trusted_proxy_hops)
        result = await op.handler(Call(services, principal, params, query, body, trace, request.headers, address, stream))
        return self._respond(op, result)

    @staticmethod
    def _query(op: Operation, request: Request) -> BaseModel | None:
        items = dict(request.query_params)
        if op.query is None:
            if items:
                raise validation_failed([FieldError(f"query.{k}", "Extra inputs are not permitted", "extra_forbidden") for k in items])
            return None
        try:
            return op.query.model_validate(items)
        except ValidationError as exc:
            raise invalid(exc, "query") from None

    @staticmethod
    def _stream(op: Operation, request: Request, default_limit: int):
        """The body's chunks, unread: 415 for a media type the operation does not consume, 413
        for a declared length past its limit (the handler enforces the limit while reading)."""
        media = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        if media not in op.consumes:
            raise unsupported_media_type(" or ".join(op.consumes))
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise bad_request("Content-Length is not a number.")
            if int(declared) > (op.max_body_bytes or default_limit):
                raise too_large(op.max_body_bytes or default_limit)
        return request.stream()

    @staticmethod
    async def _body(op: Operation, request: Request, default_limit: int) -> BaseModel | None:
        if request.method not in _BODY_METHODS:
            return None
        raw = await read_limited(request, op.max_body_bytes or default_limit)
        if op.body is None:
            return None
        data = parse_json(request, raw)
        try:
            return op.body.model_validate(data)
        except ValidationError as exc:
            raise invalid(exc, "body") from None

    def _respond(self, op: Operation, result: Any) -> Response:
        if isinstance(result, EventStream):
            return StreamingResponse(self._sse(op, result.events), status_code=op.status, media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        if isinstance(result, Answer):
            return Response(result.body.model_dump_json(), status_code=result.status, headers=dict(result.headers),
                            media_type="application/json")
        if isinstance(result, FileAnswer):
            return FileResponse(result.path, media_type=op.produces, filename=result.filename,
                                background=BackgroundTask(result.path.unlink, missing_ok=True))
        if op.response is None:
            return Response(status_code=op.status)
        if isinstance(result, RenderedJson):
            return Response(result.body, status_code=op.status, media_type="application/json")
        model = result if isinstance(result, op.response) else op.response.model_validate(result)
        return Response(model.model_dump_json(), status_code=op.status, media_type="application/json")

    async def _sse(self, op: Operation, events: AsyncIterator[tuple[str, Any]]) -> AsyncIterator[bytes]:
        """Server-sent events; a failure while streaming ends the stream with an ``error`` event."""
        try:
            async for name, data in events:
                if name is None:   # a keep-alive comment: proxies keep a quiet stream open
                    yield b": keep-alive\n\n"
                    continue
                yield f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n".encode()
        except Problem as problem:
            yield _sse_error(problem)
        except TransientError as exc:
            log.warning("dependency unavailable while streaming", extra={
                "function": self.spec.name, "operation": op.operation_id, "error_type": type(exc).__name__})
            yield _sse_error(Problem(503, "temporarily-unavailable",
                                     "A service this needs is unavailable; try again shortly."))
        except Exception as exc:
            log.error("unhandled error while streaming", extra={"function": self.spec.name, "operation": op.operation_id,
                                                                "error_type": type(exc).__name__, "where": where(exc)})
            yield _sse_error(internal_error())

    async def _health(self) -> Response:
        services = await self.holder.get()
        checks = await services.health()
        ok = all(checks.values())
        return JSONResponse({"status": "ok" if ok else "degraded", "function": self.spec.name, "checks": checks},
                            status_code=200 if ok else 503)

    def _record(self, request: Request, operation: str, status: int, code: str | None, elapsed: float, trace_id: str) -> None:
        metrics.REQUEST_SECONDS.labels(self.spec.name, operation, str(status)).observe(elapsed)
        if code:
            metrics.REQUEST_ERRORS.labels(self.spec.name, code).inc()
        log.info("request", extra={"function": self.spec.name, "operation": operation, "method": request.method,
                                   "status": status, "code": code, "latency_ms": round(elapsed * 1000, 2),
                                   "trace_id": trace_id})
