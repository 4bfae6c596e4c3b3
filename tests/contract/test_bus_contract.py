"""The event bus contract, held by the embedded bus and by Kafka alike.

Kafka delivers asynchronously from other threads, so every wait polls with a deadline.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable

import pytest
from cloudevents.http import CloudEvent

from medflow.bus.events import make_event
from medflow.bus.ports import DeadLetter, DeliveryPolicy
from medflow.errors import PermanentError

KINDS = pytest.mark.parametrize("kind", ["memory", "real"])
STORED = "org.medflow.imaging.study_stored.v1"
DELETED = "org.medflow.imaging.study_deleted.v1"
AUDITED = "org.medflow.audit.record_read.v1"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
WAIT_S = 20.0


async def eventually(condition: Callable[[], Any] | Callable[[], Awaitable[Any]], timeout_s: float = WAIT_S) -> Any:
    """Poll ``condition`` (sync or async) until it returns something truthy; fail at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.05)


def event(type_: str = STORED, subject: str = "study-1", **data: Any) -> CloudEvent:
    return make_event(type_, "/medflow/contract-test", subject, data or {"n": 0}, traceparent=TRACEPARENT)


class Recorder:
    """A handler that records what it was given and can fail its first calls."""

    def __init__(self, fail_first: int = 0, error: type[Exception] = RuntimeError) -> None:
        self.events: list[CloudEvent] = []
        self.calls = 0
        self._fail_first = fail_first
        self._error = error

    async def __call__(self, event: CloudEvent) -> None:
        self.calls += 1
        if self.calls <= self._fail_first:
            raise self._error(f"failure {self.calls}")
        self.events.append(event)

    def ids(self) -> list[str]:
        return [e["id"] for e in self.events]


def attributes(e: CloudEvent) -> dict[str, Any]:
    names = ("id", "type", "source", "subject", "time", "traceparent")
    return {**{name: e.get(name) for name in names}, "data": e.data}


async def dead_letters_of(bus: Any, group: str, count: int) -> list[DeadLetter]:
    return await eventually(lambda: _at_least(bus.dead_letters(group), count))


async def _at_least(letters: Awaitable[list[DeadLetter]], count: int) -> list[DeadLetter] | None:
    found = await letters
    return found if len(found) >= count else None


@KINDS
async def test_published_event_reaches_a_subscriber_once_and_intact(bus_factory, kind):
    bus = await bus_factory(kind)
    handler = Recorder()
    bus.subscribe("indexer", [STORED], handler)
    await bus.start()
    sent = event(n=1, patient="p-1")
    marker = event(n=2)

    await bus.publish(sent)
    await bus.publish(marker)  # same subject: handled after ``sent``, so duplicates would show by then
    await eventually(lambda: marker["id"] in handler.ids())

    assert handler.ids() == [sent["id"], marker["id"]]
    assert attributes(handler.events[0]) == attributes(sent)
    assert handler.events[0].data == {"n": 1, "patient": "p-1"}


@KINDS
async def test_each_group_gets_every_matching_event(bus_factory, kind):
    bus = await bus_factory(kind)
    indexer, thumbnails = Recorder(), Recorder()
    bus.subscribe("indexer", [STORED], indexer)
    bus.subscribe("thumbnails", ["org.medflow.imaging.*"], thumbnails)
    await bus.start()
    sent = event()

    await bus.publish(sent)
    await eventually(lambda: indexer.events and thumbnails.events)

    assert indexer.ids() == [sent["id"]]
    assert thumbnails.ids() == [sent["id"]]


@KINDS
async def test_a_group_does_not_get_types_it_did_not_subscribe_to(bus_factory, kind):
    bus = await bus_factory(kind)
    indexer, auditor = Recorder(), Recorder()
    bus.subscribe("indexer", [STORED], indexer)
    bus.subscribe("auditor", [AUDITED], auditor)
    await bus.start()
    other_type_same_topic = event(DELETED)
    other_topic = event(AUDITED)
    wanted = event(STORED)

    for sent in (other_type_same_topic, other_topic, wanted):
        await bus.publish(sent)
    # ``wanted`` follows the deleted event on the same subject, so once it is in, that one was passed over.
    await eventually(lambda: indexer.events and auditor.events)

    assert indexer.ids() == [wanted["id"]]
    assert auditor.ids() == [other_topic["id"]]


@KINDS
async def test_transient_failures_are_retried_until_the_handler_succeeds(bus_factory, kind):
    bus = await bus_factory(kind, DeliveryPolicy(max_attempts=5, backoff_initial_s=0.01, backoff_max_s=0.05))
    handler = Recorder(fail_first=2)
    bus.subscribe("indexer", [STORED], handler)
    await bus.start()
    sent = event()

    await bus.publish(sent)
    await eventually(lambda: handler.events)

    assert handler.ids() == [sent["id"]]
    assert handler.calls == 3
    assert await bus.dead_letters("indexer") == []


@KINDS
async def test_a_permanent_error_is_dead_lettered_at_once_with_the_original_event(bus_factory, kind):
    bus = await bus_factory(kind)
    handler = Recorder(fail_first=1_000, error=PermanentError)
    bus.subscribe("indexer", [STORED], handler)
    await bus.start()
    sent = event(n=7)

    await bus.publish(sent)
    [letter] = await dead_letters_of(bus, "indexer", 1)

    assert handler.calls == 1
    assert letter.group == "indexer"
    assert letter.attempts == 1
    assert "PermanentError" in letter.reason and "failure 1" in letter.reason
    assert attributes(letter.event) == attributes(sent)
    assert letter.failed_at.tzinfo is not None


@KINDS
async def test_a_handler_that_always_fails_is_dead_lettered_after_max_attempts(bus_factory, kind):
    bus = await bus_factory(kind, DeliveryPolicy(max_attempts=3, backoff_initial_s=0.01, backoff_max_s=0.05))
    handler = Recorder(fail_first=1_000)
    bus.subscribe("indexer", [STORED], handler)
    await bus.start()
    sent = event()

    await bus.publish(sent)
    [letter] = await dead_letters_of(bus, "indexer", 1)

    assert handler.calls == 3
    assert letter.attempts == 3
    assert "3 attempts" in letter.reason and "RuntimeError" in letter.reason
    assert letter.event["id"] == sent["id"]
    assert letter.event.data == sent.data


@KINDS
async def test_events_about_one_subject_are_handled_in_publication_order(bus_factory, kind):
    bus = await bus_factory(kind)
    handler = Recorder()
    bus.subscribe("indexer", [STORED], handler)
    await bus.start()
    sent = [event(subject=f"study-{i % 3}", n=i) for i in range(30)]

    for e in sent:
        await bus.publish(e)
    await eventually(lambda: len(handler.events) >= len(sent))

    for subject in ("study-0", "study-1", "study-2"):
        assert [e.data["n"] for e in handler.events if e["subject"] == subject] == \
               [e.data["n"] for e in sent if e["subject"] == subject]
    assert sorted(handler.ids()) == sorted(e["id"] for e in sent)
