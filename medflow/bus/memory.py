"""In-process event bus: same routing, ordering, retry and dead-letter rules as Kafka.

Each consumer group has ``concurrency`` lanes (one queue and one worker each; 1 unless the
catalogue says otherwise); an event's lane is chosen by its subject, so events about one
resource are handled in publication order, as Kafka keeps order per key and partition.
``wait_idle`` lets tests and the demo seeder wait until everything published has been handled.
"""

from __future__ import annotations

import asyncio
import copy
import zlib
from dataclasses import dataclass, field
from typing import Sequence

from cloudevents.http import CloudEvent

from medflow.bus.delivery import deliver
from medflow.bus.ports import DeadLetter, DeliveryPolicy, Handler, Lag, Outcome, matches
from medflow.ids import utcnow

STOP_RECHECK_S = 1.0   # stop() cancels a worker again if it is still running after this long


@dataclass
class _Group:
    name: str
    types: Sequence[str]
    handler: Handler
    policy: DeliveryPolicy
    concurrency: int = 1
    lanes: list[asyncio.Queue] = field(default_factory=list)
    workers: list[asyncio.Task] = field(default_factory=list)
    handled: int = 0

    def __post_init__(self) -> None:
        self.lanes = [asyncio.Queue() for _ in range(max(1, self.concurrency))]

    def lane_for(self, event: CloudEvent) -> asyncio.Queue:
        subject = (event.get("subject") or event["id"]).encode()
        return self.lanes[zlib.crc32(subject) % len(self.lanes)]

    @property
    def unfinished(self) -> int:
        return sum(q._unfinished_tasks for q in self.lanes)


class MemoryEventBus:
    def __init__(self, default_policy: DeliveryPolicy | None = None) -> None:
        self._groups: dict[str, _Group] = {}
        self._dead: dict[str, list[DeadLetter]] = {}
        self._policy = default_policy or DeliveryPolicy()
        self._started = False

    def subscribe(self, group: str, types: Sequence[str], handler: Handler, policy: DeliveryPolicy | None = None, *,
                  topics: Sequence[str] | None = None, concurrency: int = 1) -> None:
        if group in self._groups:
            raise ValueError(f"consumer group {group!r} already subscribed")
        self._groups[group] = _Group(group, tuple(types), handler, policy or self._policy, concurrency)
        if self._started:
            self._start_group(self._groups[group])

    async def publish(self, event: CloudEvent) -> None:
        for group in self._groups.values():
            if matches(group.types, event["type"]):
                group.lane_for(event).put_nowait(copy.deepcopy(event))  # each group gets its own copy, like a broker

    def _start_group(self, group: _Group) -> None:
        group.workers = [asyncio.create_task(self._work(group, lane), name=f"bus:{group.name}:{i}")
                         for i, lane in enumerate(group.lanes)]

    async def start(self) -> None:
        self._started = True
        for group in self._groups.values():
            if not group.workers:
                self._start_group(group)

    async def stop(self) -> None:
        """Cancel every lane's worker and wait for it, cancelling again a worker that is still
        running after a moment (a handler that swallowed the cancellation would otherwise go
        back to waiting for its next event, and stop would never return)."""
        self._started = False
        for group in self._groups.values():
            running = set(group.workers)
            while running:
                for worker in running:
                    worker.cancel()
                _, running = await asyncio.wait(running, timeout=STOP_RECHECK_S)
            group.workers = []

    async def wait_idle(self, timeout_s: float = 30.0) -> None:
        """Wait until every queued event has been handled or dead-lettered."""
        await asyncio.wait_for(asyncio.gather(*(q.join() for g in self._groups.values() for q in g.lanes)), timeout_s)

    async def dead_letters(self, group: str, limit: int = 100) -> list[DeadLetter]:
        return list(self._dead.get(group, []))[:limit]

    async def lag(self, group_topics: dict[str, Sequence[str]]) -> list[Lag]:
        """One in-process queue per group: its unfinished events are the lag."""
        rows = []
        for name in group_topics:
            group = self._groups.get(name)
            if group is not None:
                handled = group.handled
                rows.append(Lag(name, "in-process", 0, handled, handled + group.unfinished, group.unfinished))
        return rows

    async def dead_letter_counts(self, groups: Sequence[str]) -> dict[str, int]:
        return {g: len(self._dead.get(g, [])) for g in groups}

    async def _work(self, group: _Group, lane: asyncio.Queue) -> None:
        while True:
            event = await lane.get()
            try:
                result = await deliver(event, group.handler, group.policy, group.name)
                if result.outcome is Outcome.REJECT:
                    self._dead.setdefault(group.name, []).append(
                        DeadLetter(group.name, event, result.reason, result.attempts, utcnow()))
            finally:
                group.handled += 1
                lane.task_done()
