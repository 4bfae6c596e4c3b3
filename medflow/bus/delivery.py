"""One delivery of one event to one handler, with the retry and dead-letter rules."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from cloudevents.http import CloudEvent

from medflow.bus.events import describe
from medflow.bus.ports import DeliveryPolicy, Handler, Outcome
from medflow.errors import PermanentError

log = logging.getLogger("medflow.bus")


@dataclass(frozen=True)
class DeliveryResult:
    outcome: Outcome          # DONE, or REJECT when it must be dead-lettered
    attempts: int
    reason: str = ""


def _reason(exc: BaseException) -> str:
    """A dead-letter reason: the error class and its message (our messages carry no patient data)."""
    text = str(exc)[:500]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def deliver(event: CloudEvent, handler: Handler, policy: DeliveryPolicy, group: str) -> DeliveryResult:
    """Call ``handler`` until done, a permanent failure, or ``max_attempts`` transient failures."""
    attempt = 0
    while True:
        attempt += 1
        try:
            await handler(event)
            return DeliveryResult(Outcome.DONE, attempt)
        except asyncio.CancelledError:
            raise
        except PermanentError as exc:
            log.warning("event rejected", extra={**describe(event), "group": group, "attempt": attempt})
            return DeliveryResult(Outcome.REJECT, attempt, "rejected: " + _reason(exc))
        except Exception as exc:  # transient by default: retried
            if attempt >= policy.max_attempts:
                log.error("event dead-lettered after retries", extra={**describe(event), "group": group, "attempt": attempt})
                return DeliveryResult(Outcome.REJECT, attempt, f"gave up after {attempt} attempts: " + _reason(exc))
            log.info("event delivery failed; retrying", extra={**describe(event), "group": group, "attempt": attempt})
            await asyncio.sleep(policy.delay(attempt))
