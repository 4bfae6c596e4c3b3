"""The event bus interface and the delivery rules shared by every adapter and the relay.

A handler finishes normally (done), raises ``PermanentError`` (never retried: straight
to the dead-letter store with the reason), or raises anything else (retried with
exponential backoff and jitter, dead-lettered after ``max_attempts``).
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Awaitable, Callable, Protocol, Sequence

from cloudevents.http import CloudEvent

Handler = Callable[[CloudEvent], Awaitable[None]]


class Outcome(enum.Enum):
    DONE = "done"
    RETRY = "retry"
    REJECT = "reject"


@dataclass(frozen=True)
class DeliveryPolicy:
    max_attempts: int = 5
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 10.0

    def delay(self, attempt: int) -> float:
        """Full-jitter exponential backoff before retry number ``attempt`` (1-based)."""
        ceiling = min(self.backoff_max_s, self.backoff_initial_s * (2 ** (attempt - 1)))
        return random.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True)
class DeadLetter:
    group: str
    event: CloudEvent
    reason: str
    attempts: int
    failed_at: datetime
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Lag:
    """How far a consumer group is behind on one partition (the in-process bus: one queue)."""
    group: str
    topic: str
    partition: int
    committed: int
    end: int
    lag: int


def matches(patterns: Sequence[str], event_type: str) -> bool:
    """Exact types or prefixes ending in ``*`` (``org.medflow.audit.*``)."""
    return any(event_type == p or (p.endswith("*") and event_type.startswith(p[:-1])) for p in patterns)


class EventBus(Protocol):
    async def publish(self, event: CloudEvent) -> None:
        """Durably hand the event over (returns after the broker acknowledged it)."""

    def subscribe(self, group: str, types: Sequence[str], handler: Handler, policy: DeliveryPolicy | None = None, *,
                  topics: Sequence[str] | None = None, concurrency: int = 1) -> None:
        """Register a consumer group before ``start``; each group sees every matching event.
        ``topics`` names the topics carrying ``types`` (from the catalogue) where the bus has topics.
        ``concurrency``: up to that many events of the group in flight in this process, still
        in order per subject (Kafka: one consumer per lane, each with its own partitions)."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    async def dead_letters(self, group: str, limit: int = 100) -> list[DeadLetter]:
        """Dead-lettered events of a group, oldest first, each with its original and reason."""

    async def lag(self, group_topics: dict[str, Sequence[str]]) -> list[Lag]:
        """Consumer lag per group, topic and partition (``group_topics``: each group's topics)."""

    async def dead_letter_counts(self, groups: Sequence[str]) -> dict[str, int]:
        """How many events each group has dead-lettered."""
