"""Operating the bus: consumer lag, dead letters listed and replayed.

Groups and topics come from the catalogue, so any function (not only the one consuming)
can report them. A replay publishes the dead-lettered original again, same id and
attributes, to its type's topic: consumers are idempotent, so replaying twice is harmless.
"""

from __future__ import annotations

from typing import Any

from medflow.bus.catalogue import Catalogue
from medflow.bus.ports import DeadLetter, EventBus, Lag


def group_topics(catalogue: Catalogue) -> dict[str, list[str]]:
    return {c.group: catalogue.topics_for(c.accepts) for c in catalogue.consumers}


def known_group(catalogue: Catalogue, name: str) -> str | None:
    """The bus's name of a consumer group given as in the catalogue (``job_worker``)."""
    wanted = catalogue.namespace + name
    return next((c.group for c in catalogue.consumers if c.group == wanted), None)


async def lag_report(bus: EventBus, catalogue: Catalogue) -> list[Lag]:
    return await bus.lag(group_topics(catalogue))


async def dead_letter_counts(bus: EventBus, catalogue: Catalogue) -> dict[str, int]:
    return await bus.dead_letter_counts([c.group for c in catalogue.consumers])


def describe_dead_letter(letter: DeadLetter) -> dict[str, Any]:
    """What an administrator sees: attributes, reason, attempts — the data only as its keys."""
    event = letter.event
    data = event.data if isinstance(event.data, dict) else {}
    return {"event_id": event["id"], "type": event["type"], "source": event["source"], "subject": event.get("subject"),
            "reason": letter.reason, "attempts": letter.attempts, "failed_at": letter.failed_at,
            "data_keys": sorted(data), "origin": letter.extra}


async def find_dead_letter(bus: EventBus, group: str, event_id: str, limit: int = 10_000) -> DeadLetter | None:
    return next((d for d in await bus.dead_letters(group, limit) if d.event["id"] == event_id), None)


async def replay(bus: EventBus, letter: DeadLetter) -> None:
    """Publish the original event again (its type's topic; every subscribed group sees it)."""
    await bus.publish(letter.event)
