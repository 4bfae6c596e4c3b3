"""Prometheus metrics shared by every function: request latency and errors, event outcomes,
cache-aside hits, misses and loads."""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess

from medflow.resilience import breaker_states

REQUEST_SECONDS = Histogram("medflow_request_seconds", "HTTP request latency", ["function", "operation", "status"])
REQUEST_ERRORS = Counter("medflow_request_errors_total", "HTTP requests answered with a problem", ["function", "code"])
EVENTS = Counter("medflow_events_total", "CloudEvents handled", ["function", "type", "outcome"])
BREAKER_OPEN = Gauge("medflow_circuit_open", "1 when a circuit breaker is open", ["name"])

# Cache-aside reads (medflow/cache/aside.py), labelled by kind (announcements, profiles, ...).
# Hit rate = hits / (hits + misses); stale and negative hits are counted in hits too.
CACHE_HITS = Counter("medflow_cache_hits_total", "Cache-aside reads answered from the cache", ["kind"])
CACHE_STALE_HITS = Counter("medflow_cache_stale_hits_total",
                           "Cache-aside hits answered with a stale value while one caller refreshed it", ["kind"])
CACHE_NEGATIVE_HITS = Counter("medflow_cache_negative_hits_total",
                              "Cache-aside hits answered with a cached 'does not exist'", ["kind"])
CACHE_MISSES = Counter("medflow_cache_misses_total", "Cache-aside reads not found in the cache", ["kind"])
CACHE_LOADS = Counter("medflow_cache_loads_total", "Cache-aside loads from the source of truth", ["kind"])
CACHE_LOAD_SECONDS = Histogram("medflow_cache_load_seconds", "Cache-aside load latency", ["kind"],
                               buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
CACHE_FALLBACKS = Counter("medflow_cache_fallbacks_total",
                          "Cache-aside reads answered by the source because the cache failed", ["kind"])
CACHE_UNCACHED = Counter("medflow_cache_uncached_total",
                         "Cache-aside reads answered by the source because caching is switched off", ["kind"])
CACHE_ERRORS = Counter("medflow_cache_errors_total", "Failed cache calls of cache-aside", ["kind"])
CACHE_INVALIDATIONS = Counter("medflow_cache_invalidations_total", "Cache-aside generation bumps asked for", ["kind"])


def _registry() -> CollectorRegistry:
    """This process's metrics; with several workers (gunicorn ``WORKERS``) and prometheus_client's
    ``PROMETHEUS_MULTIPROC_DIR`` set, the sum over every worker of the server."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def exposition() -> tuple[bytes, str]:
    for state in breaker_states():
        BREAKER_OPEN.labels(state["name"]).set(1 if state["state"] == "open" else 0)
    return generate_latest(_registry()), CONTENT_TYPE_LATEST

# Knowledge assistant (medflow/knowledge/assistant.py): the stages of one question.
KNOWLEDGE_STAGE_SECONDS = Histogram(
    "medflow_knowledge_stage_seconds", "Knowledge assistant stage latency: encode, recall_rerank, first_token, total",
    ["stage", "mode"], buckets=(0.005, 0.01, 0.02, 0.04, 0.08, 0.15, 0.3, 0.6, 1.2, 2.5, 5, 10, 30))
KNOWLEDGE_DECODE_TOKENS_PER_SECOND = Histogram(
    "medflow_knowledge_decode_tokens_per_second", "Streamed LLM tokens per second after the first one",
    buckets=(1, 5, 10, 20, 40, 80, 160, 320, 640))
KNOWLEDGE_INDEX_LOAD_SECONDS = Histogram(
    "medflow_knowledge_index_load_seconds", "Loading an institution's vector index from the object store",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16))

# Analysis workflow (medflow/analysis): model calls from the worker, and task outcomes.
MODEL_CALLS = Counter("medflow_model_calls_total", "Calls to a KServe model (retries inside one call count once)",
                      ["model", "outcome"])
MODEL_CALL_SECONDS = Histogram("medflow_model_call_seconds", "Model call latency from the worker, retries included",
                               ["model"], buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60))
ANALYSIS_TASKS = Counter("medflow_analysis_tasks_total", "Analysis tasks finished, by model and state",
                         ["model", "state"])
