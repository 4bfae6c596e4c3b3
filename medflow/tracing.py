"""W3C Trace Context: parse the incoming ``traceparent``, start a span, carry it on."""

from __future__ import annotations

import contextvars
import re
import secrets
from dataclasses import dataclass

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


@dataclass(frozen=True)
class TraceContext:
    trace_id: str
    span_id: str
    parent_span_id: str | None
    flags: str = "01"

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


_current: contextvars.ContextVar[TraceContext | None] = contextvars.ContextVar("medflow_trace", default=None)


def child_of(traceparent: str | None) -> TraceContext:
    """A new span under the caller's trace, or a new trace when the header is absent or invalid."""
    match = _TRACEPARENT.match((traceparent or "").strip().lower())
    if match and match.group(1) != _ZERO_TRACE and match.group(2) != _ZERO_SPAN:
        return TraceContext(match.group(1), secrets.token_hex(8), match.group(2), match.group(3))
    return TraceContext(secrets.token_hex(16), secrets.token_hex(8), None)


def activate(ctx: TraceContext) -> contextvars.Token:
    return _current.set(ctx)


def deactivate(token: contextvars.Token) -> None:
    _current.reset(token)


def current() -> TraceContext | None:
    return _current.get()


def current_traceparent() -> str | None:
    ctx = _current.get()
    return ctx.traceparent if ctx else None
