"""Turning a function declaration into a functions-framework target.

``functions/<name>/main.py`` ends with ``target = entrypoint(spec)``; then
``functions-framework --asgi --target <name> --source functions/<name>/main.py`` serves it
alone (a Knative Service), and the one-process server mounts the same spec.

CloudEvent functions use the HTTP signature and parse the CloudEvent themselves, because
functions-framework's ``cloud_event`` signature answers every failure with 500 (or a
plain-text 400) and so cannot follow Knative's 400-versus-retry delivery contract nor
answer problem+json.
"""

from __future__ import annotations

from typing import Awaitable, Callable

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response

from medflow.config import load_settings
from medflow.runtime.events import EventRuntime
from medflow.runtime.http import HttpRuntime
from medflow.runtime.logs import configure_logging
from medflow.runtime.services import ServiceHolder
from medflow.runtime.spec import EventFunction, HttpFunction


def runtime_for(spec: HttpFunction | EventFunction, holder: ServiceHolder) -> HttpRuntime | EventRuntime:
    return HttpRuntime(spec, holder) if isinstance(spec, HttpFunction) else EventRuntime(spec, holder)


def entrypoint(spec: HttpFunction | EventFunction) -> Callable[[Request], Awaitable[Response]]:
    """An async functions-framework HTTP target named after the function."""
    configure_logging(load_settings().log_level)
    runtime = runtime_for(spec, ServiceHolder())

    async def target(request: Request) -> Response:
        return await runtime.handle(request)

    target.__name__ = target.__qualname__ = spec.name
    target.runtime = runtime  # type: ignore[attr-defined]
    return functions_framework.aio.http(target)
