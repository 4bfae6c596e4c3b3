"""Calling a KServe model over the Open Inference Protocol v2, asynchronously.

Every call goes through ``call_remote``: a time-out per try, bounded retries with
exponential backoff and jitter for transient failures, and one circuit breaker per model,
so a model that is down or slow stops receiving traffic for a while instead of holding
every worker. A model that refuses the input (HTTP 400/422, KServe's ``InvalidInput``)
is a permanent failure with the model's own reason; a model not loaded (404), overloaded
(429) or failing (5xx), a refused connection or a time-out is transient.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import httpx

from medflow.errors import PermanentError, TransientError
from medflow.resilience import BreakerConfig, CircuitBreaker, call_remote
from medflow.runtime import metrics

MAX_REASON = 300


class ModelRejectedInput(PermanentError):
    """The model server answered 400/422: this input can never succeed."""


class ModelClient(Protocol):
    async def infer(self, model: str, version: str, request: dict[str, Any]) -> tuple[dict[str, Any], float]:
        """(the v2 response, milliseconds the call took, retries included)."""

    async def close(self) -> None: ...


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
        text = str(body.get("error") or body.get("detail") or "") if isinstance(body, dict) else ""
    except ValueError:
        text = ""
    return (text or f"HTTP {response.status_code}")[:MAX_REASON]


class KServeClient:
    """One pooled ``httpx.AsyncClient`` per process; one breaker per model."""

    def __init__(self, url_template: str, *, timeout_s: float, attempts: int,
                 breaker: BreakerConfig | None = None, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._url_template = url_template.rstrip("/")
        self._timeout_s, self._attempts = timeout_s, attempts
        self._breaker_config = breaker or BreakerConfig(window=20, min_calls=5, failure_ratio=0.5,
                                                        slow_call_s=timeout_s * 0.8, open_s=15.0, half_open_calls=1)
        self._breakers: dict[str, CircuitBreaker] = {}
        self._http = httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(timeout_s, connect=min(5.0, timeout_s)),
                                       limits=httpx.Limits(max_connections=64, max_keepalive_connections=32))

    def url(self, model: str) -> str:
        """``{model}`` in the template is the v2 model name, ``{model_dns}`` the same as a DNS
        label (KServe service names: chest-xray-diagnosis); the path keeps the v2 name."""
        base = self._url_template.format(model=model, model_dns=model.replace("_", "-"))
        return f"{base}/v2/models/{model}/infer"

    def breaker(self, model: str) -> CircuitBreaker:
        if model not in self._breakers:
            self._breakers[model] = CircuitBreaker(f"model-{model}", self._breaker_config)
        return self._breakers[model]

    async def _once(self, model: str, request: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self._http.post(self.url(model), json=request)
        except httpx.TransportError as exc:
            raise TransientError(f"model {model} unreachable ({type(exc).__name__})") from None
        if response.status_code in (400, 422):
            raise ModelRejectedInput(f"model {model} rejected the input: {_reason(response)}")
        if response.status_code != 200:
            raise TransientError(f"model {model} answered HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError:
            raise TransientError(f"model {model} answered something that is not JSON") from None

    async def infer(self, model: str, version: str, request: dict[str, Any]) -> tuple[dict[str, Any], float]:
        started = time.perf_counter()
        outcome = "error"
        try:
            body = await call_remote(lambda: self._once(model, request), timeout_s=self._timeout_s,
                                     attempts=self._attempts, breaker=self.breaker(model))
            outcome = "ok"
            return body, (time.perf_counter() - started) * 1000
        except PermanentError:
            outcome = "rejected"
            raise
        finally:
            metrics.MODEL_CALLS.labels(model, outcome).inc()
            metrics.MODEL_CALL_SECONDS.labels(model).observe(time.perf_counter() - started)

    async def close(self) -> None:
        await self._http.aclose()
