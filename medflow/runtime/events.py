"""The shared middleware of every CloudEvent function, over HTTP (Knative, the relay) and
in-process (the embedded bus). Knative's delivery contract:

2xx done · 400 can never succeed (not retried; dead-lettered) · 429/5xx retry with backoff.
Malformed CloudEvents are answered with problem+json: 400 missing/invalid attributes,
415 data that is not JSON.
"""

from __future__ import annotations

import logging
import time

from cloudevents.exceptions import GenericException as CloudEventError
from cloudevents.http import CloudEvent
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from medflow.bus.events import describe, parse_http
from medflow.bus.ports import matches
from medflow.errors import PermanentError, Problem, TransientError, bad_request, not_found, unsupported_media_type
from medflow.runtime import metrics
from medflow.runtime.body import is_json, read_limited
from medflow.runtime.http import where
from medflow.runtime.problems import internal_error, problem_response
from medflow.runtime.services import ServiceHolder
from medflow.runtime.spec import EventCall, EventFunction
from medflow.tracing import activate, child_of, deactivate

log = logging.getLogger("medflow.events")
STRUCTURED = "application/cloudevents+json"


def _check_envelope(request: Request) -> None:
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type == STRUCTURED:
        return
    if "ce-specversion" not in request.headers:
        raise bad_request("Not a CloudEvent: ce-specversion header (binary mode) or "
                          f"{STRUCTURED} body (structured mode) expected.", code="not-a-cloudevent")
    if not is_json(content_type):
        raise unsupported_media_type("application/json (CloudEvent data)")


class EventRuntime:
    def __init__(self, spec: EventFunction, holder: ServiceHolder) -> None:
        self.spec = spec
        self.holder = holder

    async def handle(self, request: Request, subpath: str | None = None) -> Response:
        """A CloudEvent delivered over HTTP: parse, deliver, answer with Knative's statuses."""
        path = (subpath if subpath is not None else request.url.path) or "/"
        started = time.perf_counter()
        if request.method == "GET" and path == "/healthz":
            services = await self.holder.get()
            checks = await services.health()
            return JSONResponse({"status": "ok" if all(checks.values()) else "degraded", "function": self.spec.name,
                                 "checks": checks}, status_code=200 if all(checks.values()) else 503)
        if request.method == "GET" and path == "/metrics":
            body, content_type = metrics.exposition()
            return Response(body, media_type=content_type)
        try:
            if path != "/":
                raise not_found("operation")
            if request.method != "POST":
                raise Problem(405, "method-not-allowed", "CloudEvents are delivered with POST.")
            services = await self.holder.get()
            _check_envelope(request)
            raw = await read_limited(request, services.settings.max_body_bytes)
            try:
                event = parse_http(request.headers, raw)
            except CloudEventError as exc:
                raise bad_request(f"Malformed CloudEvent: {type(exc).__name__}.", code="malformed-cloudevent") from None
            if isinstance(event.data, (bytes, bytearray)):
                raise bad_request("The CloudEvent data is not valid JSON.", code="malformed-json")
            await self.deliver(event)
            response: Response = Response(status_code=204)
        except Problem as problem:
            response = problem_response(problem)
        except PermanentError as exc:
            response = problem_response(bad_request(str(exc)[:300], code="event-rejected"))
        except TransientError:
            response = problem_response(Problem(503, "temporarily-unavailable", "Try again later."))
        except Exception:
            response = problem_response(internal_error())
        log.info("event delivery", extra={"function": self.spec.name, "status": response.status_code,
                                          "latency_ms": round((time.perf_counter() - started) * 1000, 2)})
        return response

    async def deliver(self, event: CloudEvent) -> None:
        """Validate and handle one event. Raises PermanentError for an event that can never
        succeed, anything else for a failure worth retrying. Used by HTTP and the bus."""
        trace = child_of(event.get("traceparent"))
        token = activate(trace)
        outcome = "done"
        try:
            if not matches(self.spec.accepts, event["type"]):
                raise PermanentError(f"{self.spec.name} does not accept {event['type']}")
            services = await self.holder.get()
            services.catalogue.validate(event["type"], event.data)
            await self.spec.handler(EventCall(services, event, trace))
        except PermanentError:
            outcome = "rejected"
            raise
        except Exception as exc:
            outcome = "failed"
            if not isinstance(exc, TransientError):
                log.error("event handler error", extra={**describe(event), "function": self.spec.name,
                                                        "error_type": type(exc).__name__, "where": where(exc)})
            raise
        finally:
            metrics.EVENTS.labels(self.spec.name, event["type"], outcome).inc()
            log.info("event", extra={**describe(event), "function": self.spec.name, "outcome": outcome,
                                     "trace_id": trace.trace_id})
            deactivate(token)
