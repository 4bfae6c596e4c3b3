"""In-process event bus: same routing, ordering, retry and dead-letter rules as Kafka.

Each consumer group has one queue and one worker, so events are handled in publication
order per group (Kafka gives order per key; this is stricter). ``wait_idle`` lets tests
and the demo seeder wait until everything published has been handled.
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass, field
from typing import Sequence

from cloudevents.http import CloudEvent

from medflow.bus.delivery import deliver
from medflow.bus.ports import DeadLetter, DeliveryPolicy, Handler, Lag, Outcome, matches
from medflow.ids import utcnow


@dataclass
class _Group:
    name: str
    types: Sequence[str]
    handler: Handler
    policy: DeliveryPolicy
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    worker: asyncio.Task | None = None
    handled: int = 0


class MemoryEventBus:
    def __init__(self, default_policy: DeliveryPolicy | None = None) -> None:
        self._groups: dict[str, _Group] = {}
        self._dead: dict[str, list[DeadLetter]] = {}
        self._policy = default_policy or DeliveryPolicy()
        self._started = False

    def subscribe(self, group: str, types: Sequence[str], handler: Handler, policy: DeliveryPolicy | None = None, *,
                  topics: Sequence[str] | None = None) -> None:
        if group in self._groups:
            raise ValueError(f"consumer group {group!r} already subscribed")
        self._groups[group] = _Group(group, tuple(types), handler, policy or self._policy)
        if self._started:
            self._groups[group].worker = asyncio.create_task(self._work(self._groups[group]))

    async def publish(self, event: CloudEvent) -> None:
        for group in self._groups.values():
            if matches(group.types, event["type"]):
                group.queue.put_nowait(copy.deepcopy(event))  # each group gets its own copy, like a broker

    async def start(self) -> None:
        self._started = True
        for group in self._groups.values():
            if group.worker is None:
                group.worker = asyncio.create_task(self._work(group), name=f"bus:{group.name}")

    async def stop(self) -> None:
        self._started = False
        for group in self._groups.values():
            if group.worker:
                group.worker.cancel()
                await asyncio.gather(group.worker, return_exceptions=True)
                group.worker = None

    async def wait_idle(self, timeout_s: float = 30.0) -> None:
        """Wait until every queued event has been handled or dead-lettered."""
        await asyncio.wait_for(asyncio.gather(*(g.queue.join() for g in self._groups.values())), timeout_s)

    async def dead_letters(self, group: str, limit: int = 100) -> list[DeadLetter]:
        return list(self._dead.get(group, []))[:limit]

    async def lag(self, group_topics: dict[str, Sequence[str]]) -> list[Lag]:
        """One in-process queue per group: its unfinished events are the lag."""
        rows = []
        for name in group_topics:
            group = self._groups.get(name)
            if group is not None:
                handled = group.handled
                rows.append(Lag(name, "in-process", 0, handled, handled + group.queue._unfinished_tasks,
                                group.queue._unfinished_tasks))
        return rows

    async def dead_letter_counts(self, groups: Sequence[str]) -> dict[str, int]:
        return {g: len(self._dead.get(g, [])) for g in groups}

    async def _work(self, group: _Group) -> None:
        while True:
            event = await group.queue.get()
            try:
                result = await deliver(event, group.handler, group.policy, group.name)
                if result.outcome is Outcome.REJECT:
                    self._dead.setdefault(group.name, []).append(
                        DeadLetter(group.name, event, result.reason, result.attempts, utcnow()))
            finally:
                group.handled += 1
                group.queue.task_done()
