"""The one-process server of the embedded run: every function under ``/api/<name>/``,
CloudEvent functions fed in-process by the bus, signed object URLs under ``/objects/``,
the merged OpenAPI document and its reference page.
"""

from __future__ import annotations

import contextlib
from importlib import resources
from typing import Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from medflow.bootstrap import Services, delivery_policy
from medflow.errors import Problem, forbidden, not_found
from medflow.resilience import breaker_states
from medflow.runtime import metrics
from medflow.runtime.entry import runtime_for
from medflow.runtime.events import EventRuntime
from medflow.runtime.http import HttpRuntime
from medflow.runtime.openapi import build_document
from medflow.runtime.problems import problem_response
from medflow.runtime.registry import load_specs
from medflow.runtime.services import ServiceHolder
from medflow.runtime.spec import EventFunction, HttpFunction
from medflow.storage.ports import InvalidObjectKey, ObjectNotFound

OnStart = Callable[[Services], Awaitable[None]]


def subscribe_event_functions(services: Services, runtimes: dict[str, HttpRuntime | EventRuntime]) -> None:
    """Each consumer group in the catalogue gets its function's in-process delivery."""
    for consumer in services.catalogue.consumers:
        runtime = runtimes.get(consumer.function)
        if not isinstance(runtime, EventRuntime):
            raise RuntimeError(f"catalogue consumer {consumer.group} names no CloudEvent function {consumer.function}")
        services.bus.subscribe(consumer.group, consumer.accepts, runtime.deliver,
                               consumer.policy(delivery_policy(services.settings)),
                               topics=services.catalogue.topics_for(consumer.accepts),
                               concurrency=min(consumer.concurrency, services.settings.event_max_concurrency or 64))


def create_app(services: Services, on_start: OnStart | None = None) -> Starlette:
    holder = ServiceHolder(services=services)
    specs = load_specs()
    runtimes = {spec.name: runtime_for(spec, holder) for spec in specs}
    http_specs = [s for s in specs if isinstance(s, HttpFunction)]
    document = build_document(http_specs, prefix_of=lambda f: f"/api/{f.name}")

    async def dispatch(request: Request) -> Response:
        runtime = runtimes.get(request.path_params["function"])
        if runtime is None:
            return problem_response(not_found("function"))
        return await runtime.handle(request, "/" + request.path_params.get("path", ""))

    async def healthz(request: Request) -> Response:
        checks = await services.health()
        ok = all(checks.values())
        return JSONResponse({"status": "ok" if ok else "degraded", "checks": checks,
                             "functions": sorted(runtimes), "circuit_breakers": breaker_states()},
                            status_code=200 if ok else 503)

    async def metrics_endpoint(request: Request) -> Response:
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    async def reference(request: Request) -> Response:
        page = resources.files("medflow.runtime").joinpath("assets/reference.html").read_text()
        return HTMLResponse(page)

    async def signed_object(request: Request) -> Response:
        return await serve_signed_object(services, request)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        await services.objects.ensure_buckets()
        subscribe_event_functions(services, runtimes)
        await services.bus.start()
        if on_start:
            await on_start(services)
        yield
        await services.close()

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/api/openapi.json", openapi, methods=["GET"]),
        Route("/api/docs", reference, methods=["GET"]),
        Route("/api/{function}", dispatch, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        Route("/api/{function}/{path:path}", dispatch, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        Route("/objects/{bucket}/{key:path}", signed_object, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.runtimes = runtimes
    return app


async def serve_signed_object(services: Services, request: Request) -> Response:
    """Stream an object of the embedded store when its URL's signature and expiry hold."""
    store = services.objects
    verify = getattr(store, "verify_signature", None)
    if verify is None:  # S3 serves its own presigned URLs
        return problem_response(not_found("object"))
    bucket, key = request.path_params["bucket"], request.path_params["key"]
    q = request.query_params
    try:
        if not verify(bucket, key, q.get("expires", ""), q.get("sig", ""), q.get("filename")):
            raise forbidden("The link is invalid or has expired.")
        info = await store.head(bucket, key)
    except Problem as problem:
        return problem_response(problem)
    except (ObjectNotFound, InvalidObjectKey):
        return problem_response(not_found("object"))
    headers = {"Content-Length": str(info.size), "Cache-Control": "private, no-store"}
    if q.get("filename"):
        headers["Content-Disposition"] = f'attachment; filename="{q["filename"]}"'
    return StreamingResponse(store.stream(bucket, key), media_type=info.content_type, headers=headers)
