"""Prometheus metrics shared by every function: request latency and errors, event outcomes."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

from medflow.resilience import breaker_states

REQUEST_SECONDS = Histogram("medflow_request_seconds", "HTTP request latency", ["function", "operation", "status"])
REQUEST_ERRORS = Counter("medflow_request_errors_total", "HTTP requests answered with a problem", ["function", "code"])
EVENTS = Counter("medflow_events_total", "CloudEvents handled", ["function", "type", "outcome"])
BREAKER_OPEN = Gauge("medflow_circuit_open", "1 when a circuit breaker is open", ["name"])


def exposition() -> tuple[bytes, str]:
    for state in breaker_states():
        BREAKER_OPEN.labels(state["name"]).set(1 if state["state"] == "open" else 0)
    return generate_latest(), CONTENT_TYPE_LATEST
