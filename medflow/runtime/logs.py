"""Structured logging: one JSON object per line, with the trace id; never bodies or secrets."""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from medflow.tracing import current

_configured = False


class _TraceFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "trace_id", None) is None:
            ctx = current()
            record.trace_id = ctx.trace_id if ctx else None
        return True


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for every ``medflow.*`` logger (idempotent)."""
    global _configured
    if _configured:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s",
                                       rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"}))
    handler.addFilter(_TraceFilter())
    root = logging.getLogger("medflow")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    _configured = True
