"""The event bus contract, held by the embedded bus and by Kafka alike.

Kafka delivers asynchronously from other threads, so every wait polls with a deadline.
Consumer group ids are global on a broker, so each test names its groups uniquely.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
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


def group(name: str) -> str:
    return f"{name}-{secrets.token_hex(3)}"


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
    indexer_group = group("indexer")
    bus = await bus_factory(kind)
    handler = Recorder()
    bus.subscribe(indexer_group, [STORED], handler)
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
    indexer_group = group("indexer")
    bus = await bus_factory(kind)
    indexer, thumbnails = Recorder(), Recorder()
    bus.subscribe(indexer_group, [STORED], indexer)
    bus.subscribe(group("thumbnails"), ["org.medflow.imaging.*"], thumbnails)
    await bus.start()
    sent = event()

    await bus.publish(sent)
    await eventually(lambda: indexer.events and thumbnails.events)

    assert indexer.ids() == [sent["id"]]
    assert thumbnails.ids() == [sent["id"]]


@KINDS
async def test_a_group_does_not_get_types_it_did_not_subscribe_to(bus_factory, kind):
    indexer_group = group("indexer")
    bus = await bus_factory(kind)
    indexer, auditor = Recorder(), Recorder()
    bus.subscribe(indexer_group, [STORED], indexer)
    bus.subscribe(group("auditor"), [AUDITED], auditor)
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
    indexer_group = group("indexer")
    bus = await bus_factory(kind, DeliveryPolicy(max_attempts=5, backoff_initial_s=0.01, backoff_max_s=0.05))
    handler = Recorder(fail_first=2)
    bus.subscribe(indexer_group, [STORED], handler)
    await bus.start()
    sent = event()

    await bus.publish(sent)
    await eventually(lambda: handler.events)

    assert handler.ids() == [sent["id"]]
    assert handler.calls == 3
    assert await bus.dead_letters(indexer_group) == []


@KINDS
async def test_a_permanent_error_is_dead_lettered_at_once_with_the_original_event(bus_factory, kind):
    indexer_group = group("indexer")
    bus = await bus_factory(kind)
    handler = Recorder(fail_first=1_000, error=PermanentError)
    bus.subscribe(indexer_group, [STORED], handler)
    await bus.start()
    sent = event(n=7)

    await bus.publish(sent)
    [letter] = await dead_letters_of(bus, indexer_group, 1)

    assert handler.calls == 1
    assert letter.group == indexer_group
    assert letter.attempts == 1
    assert "PermanentError" in letter.reason and "failure 1" in letter.reason
    assert attributes(letter.event) == attributes(sent)
    assert letter.failed_at.tzinfo is not None


@KINDS
async def test_a_handler_that_always_fails_is_dead_lettered_after_max_attempts(bus_factory, kind):
    indexer_group = group("indexer")
    bus = await bus_factory(kind, DeliveryPolicy(max_attempts=3, backoff_initial_s=0.01, backoff_max_s=0.05))
    handler = Recorder(fail_first=1_000)
    bus.subscribe(indexer_group, [STORED], handler)
    await bus.start()
    sent = event()

    await bus.publish(sent)
    [letter] = await dead_letters_of(bus, indexer_group, 1)

    assert handler.calls == 3
    assert letter.attempts == 3
    assert "3 attempts" in letter.reason and "RuntimeError" in letter.reason
    assert letter.event["id"] == sent["id"]
    assert letter.event.data == sent.data


@KINDS
async def test_events_about_one_subject_are_handled_in_publication_order(bus_factory, kind):
    indexer_group = group("indexer")
    bus = await bus_factory(kind)
    handler = Recorder()
    bus.subscribe(indexer_group, [STORED], handler)
    await bus.start()
    sent = [event(subject=f"study-{i % 3}", n=i) for i in range(30)]

    for e in sent:
        await bus.publish(e)
    await eventually(lambda: len(handler.events) >= len(sent))

    for subject in ("study-0", "study-1", "study-2"):
        assert [e.data["n"] for e in handler.events if e["subject"] == subject] == \
               [e.data["n"] for e in sent if e["subject"] == subject]
    assert sorted(handler.ids()) == sorted(e["id"] for e in sent)


# -- Kafka only: records that never were CloudEvents, and topic mapping ---------------------


async def test_kafka_dead_letters_a_record_that_is_not_a_cloudevent_and_goes_on(bus_factory):
    from kafka import KafkaProducer

    from medflow.bus.kafka import UNDECODABLE_TYPE

    indexer_group = group("indexer")
    bus = await bus_factory("real")
    handler = Recorder()
    bus.subscribe(indexer_group, [STORED], handler)
    await bus.start()
    producer = KafkaProducer(bootstrap_servers=os.environ["MEDFLOW_TEST_KAFKA_BOOTSTRAP"])
    try:
        await asyncio.to_thread(lambda: producer.send(bus.topic_of(STORED), key=b"study-1", value=b"not an event").get(10))
    finally:
        await asyncio.to_thread(producer.close)
    after = event()
    await bus.publish(after)

    [letter] = await dead_letters_of(bus, indexer_group, 1)
    await eventually(lambda: handler.events)

    assert letter.reason.startswith("undecodable")
    assert letter.attempts == 0
    assert letter.event["type"] == UNDECODABLE_TYPE and letter.event["subject"] == "study-1"
    assert letter.event.data == b"not an event"
    assert handler.ids() == [after["id"]]


async def test_a_kafka_consumer_that_fails_is_reopened_and_delivers_what_it_had_not_finished(bus_factory):
    """A consumer loop that dies on an unexpected error (a client bug, not a handler failure)
    must not leave its group silent for the rest of the process: it is opened again, resumes
    from the group's commits, and says so in ``consumer_states``."""
    bus = await bus_factory("real")
    handler = Recorder()
    indexer_group = group("reopened")
    bus.subscribe(indexer_group, [STORED], handler)
    await bus.start()
    [worker] = bus._workers
    breaks_once = worker._consume_batch

    def consume_batch(consumer, partition, records):
        worker._consume_batch = breaks_once
        raise AssertionError("kafka client bug")

    worker._consume_batch = consume_batch
    first = event(subject="study-1")
    await bus.publish(first)

    await eventually(lambda: handler.events, timeout_s=60)
    assert handler.ids() == [first["id"]]
    [state] = bus.consumer_states()
    assert state["restarts"] == 1 and state["alive"] and state["error"] == "AssertionError"


async def test_a_kafka_consumer_that_stops_fetching_while_behind_is_reopened_and_delivers(bus_factory, monkeypatch):
    """A consumer that polls nothing while its partitions hold unread records (kafka-python
    has had such stalls; here its partitions are paused behind its back) is opened again
    after a few idle seconds, and the new one delivers what was waiting."""
    from medflow.bus import kafka as kafka_bus
    monkeypatch.setattr(kafka_bus, "STALL_AFTER_S", 2.0)
    bus = await bus_factory("real")
    handler = Recorder()
    bus.subscribe(group("stalled"), [STORED], handler)
    await bus.start()
    [worker] = bus._workers
    polls, paused = worker._poll, threading.Event()

    def stalled_poll(consumer):
        consumer.pause(*consumer.assignment())        # this consumer never fetches again
        worker._poll = polls                          # consumers opened from now on are healthy
        paused.set()
        return polls(consumer)

    worker._poll = stalled_poll
    assert await asyncio.to_thread(paused.wait, 10)
    waiting = event(subject="study-1")
    await bus.publish(waiting)

    await eventually(lambda: handler.events, timeout_s=40)
    assert handler.ids() == [waiting["id"]]
    [state] = bus.consumer_states()
    assert state["restarts"] == 1 and state["alive"] and state["error"] == "_Stalled"


async def test_kafka_type_patterns_must_stay_within_one_topic(bus_factory):
    bus = await bus_factory("real")

    assert bus.topic_of("org.medflow.imaging.*") == bus.topic_of(STORED)
    with pytest.raises(ValueError, match="spans several topics"):
        bus.subscribe(group("everything"), ["org.medflow.*"], Recorder())
    bus.subscribe(group("everything"), ["org.medflow.*"], Recorder(), topics=[bus.topic_of(STORED)])


@KINDS
async def test_a_group_with_concurrency_handles_subjects_side_by_side_and_each_in_order(kind, bus_factory):
    """``concurrency=3``: events about different subjects overlap (a slow one does not hold the
    others up), events about one subject still arrive one after another, in order."""
    bus = await bus_factory(kind)
    running, peak, seen = 0, 0, []

    async def handler(e: CloudEvent) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.2)
        seen.append((e["subject"], e.data["n"]))
        running -= 1

    bus.subscribe(group("lanes"), [STORED], handler, concurrency=3)
    await bus.start()
    subjects = [f"study-{i}" for i in range(12)]
    for n in range(2):
        for s in subjects:
            await bus.publish(event(subject=s, n=n))
    await eventually(lambda: len(seen) == 24, timeout_s=60)
    assert peak >= 2                                     # serial delivery would take 4.8 s
    for s in subjects:
        assert [n for subj, n in seen if subj == s] == [0, 1]
