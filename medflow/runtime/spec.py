"""How a function declares what it does: HTTP operations and CloudEvent handlers.

Each operation names its method and path, who may call it, and the pydantic models of
its query, body and response; the runtime validates all of them and the OpenAPI
document is generated from them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable, Mapping

from cloudevents.http import CloudEvent
from pydantic import BaseModel, ConfigDict
from starlette.routing import compile_path

from medflow.auth.principal import Access, Principal
from medflow.tracing import TraceContext

if TYPE_CHECKING:
    from medflow.bootstrap import Services

_NAME = re.compile(r"^[a-z][a-z0-9_]{1,40}$")


class RequestModel(BaseModel):
    """Base for request bodies and query strings: unknown fields are an error (422)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ResponseModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Call:
    """What an operation handler receives."""

    services: "Services"
    principal: Principal | None
    path: Mapping[str, str]
    query: Any
    body: Any
    trace: TraceContext
    headers: Mapping[str, str]
    client_address: str | None = None
    stream: AsyncIterator[bytes] | None = None   # the raw body, for operations declared ``consumes=``

    def caller(self) -> Principal:
        """The authenticated caller (operations that are not public always have one)."""
        if self.principal is None:
            raise RuntimeError("no principal on a public operation")
        return self.principal


Handler = Callable[[Call], Awaitable[Any]]


@dataclass(frozen=True)
class FileAnswer:
    """A file an operation answers with (its ``produces`` media type); removed once sent."""

    path: Path
    filename: str


@dataclass(frozen=True)
class EventStream:
    """Server-sent events an operation answers with (``produces="text/event-stream"``):
    ``(event name, JSON-serialisable data)`` pairs, sent as they come; ``(None, None)`` sends
    a keep-alive comment. An error raised while streaming becomes a final ``error`` event
    carrying the problem+json body."""

    events: AsyncIterator[tuple[str, Any]]


@dataclass(frozen=True)
class RenderedJson:
    """A body already serialised to the operation's response model (see runtime/render.py)."""

    body: bytes


@dataclass(frozen=True)
class Answer:
    """A JSON answer with its own status and headers, where the operation's usual one does
    not fit (``202 Accepted`` + ``Location`` when a request became a job)."""

    body: BaseModel
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Operation:
    function: str
    method: str
    path: str
    handler: Handler
    access: Access
    summary: str
    response: type[BaseModel] | None
    status: int = 200
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    max_body_bytes: int | None = None
    errors: tuple[int, ...] = ()
    produces: str | None = None        # media type of a file answer (FileAnswer) or text/event-stream (EventStream)
    consumes: tuple[str, ...] = ()     # media types of a streamed body (the handler reads ``call.stream``)
    regex: re.Pattern = field(init=False)

    def __post_init__(self) -> None:
        self.regex, _, _ = compile_path(self.path)

    @property
    def operation_id(self) -> str:
        return f"{self.function}.{self.handler.__name__}"


class HttpFunction:
    """An HTTP function: a set of operations served under ``/api/<name>``."""

    kind = "http"

    def __init__(self, name: str, title: str, description: str = "") -> None:
        if not _NAME.match(name):
            raise ValueError(f"function name {name!r} must be snake_case")
        self.name, self.title, self.description = name, title, description
        self.operations: list[Operation] = []

    def operation(self, method: str, path: str, *, access: Access, response: type[BaseModel] | None,
                  summary: str, status: int = 200, query: type[BaseModel] | None = None,
                  body: type[BaseModel] | None = None, max_body_bytes: int | None = None,
                  errors: tuple[int, ...] = (), produces: str | None = None,
                  consumes: tuple[str, ...] = ()) -> Callable[[Handler], Handler]:
        """``consumes`` declares a streamed (non-JSON) body: the runtime checks its media type
        and declared length (``max_body_bytes``) and hands the chunks to the handler unread."""
        def register(handler: Handler) -> Handler:
            self.operations.append(Operation(self.name, method.upper(), path, handler, access, summary, response,
                                             status, query, body, max_body_bytes, errors, produces, consumes))
            return handler
        return register

    def match(self, method: str, path: str) -> tuple[Operation | None, dict[str, str], bool]:
        """(operation, path params, path_exists) for a request path relative to the function."""
        path_exists = False
        for op in self.operations:
            found = op.regex.match(path)
            if found:
                path_exists = True
                if op.method == method or (method == "HEAD" and op.method == "GET"):
                    return op, found.groupdict(), True
        return None, {}, path_exists


@dataclass(frozen=True)
class EventCall:
    services: "Services"
    event: CloudEvent
    trace: TraceContext


EventHandler = Callable[[EventCall], Awaitable[None]]


class EventFunction:
    """A CloudEvent function: consumes the event types it accepts, validated by the catalogue."""

    kind = "event"

    def __init__(self, name: str, title: str, accepts: tuple[str, ...]) -> None:
        if not _NAME.match(name):
            raise ValueError(f"function name {name!r} must be snake_case")
        self.name, self.title, self.accepts = name, title, accepts
        self.handler: EventHandler | None = None

    def on_event(self, handler: EventHandler) -> EventHandler:
        self.handler = handler
        return handler
