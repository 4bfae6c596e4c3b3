"""The audit trail with the Kafka broker down, on the real servers: an action that has
happened still answers (its audit event waits in the transactional outbox; after the first
refused publish, at once), and the events reach the audit topic once the broker is back and
the outbox sweep runs."""

from __future__ import annotations

import asyncio
import time

import pytest
from kafka import KafkaConsumer, TopicPartition

from fault_world import world
from medflow.audit.trail import AUDIT_RECORDED, PUBLISH_BREAKER, audit
from medflow.bus import outbox

pytestmark = pytest.mark.timeout(300)


def _event_ids_on(bootstrap: str, topic: str) -> set[str]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end, ids = consumer.end_offsets(partitions), set()
        deadline = time.monotonic() + 30
        while any(consumer.position(tp) < end[tp] for tp in partitions) and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                ids.update(dict(r.headers)["ce_id"].decode() for r in batch)
        return ids
    finally:
        consumer.close()


async def test_with_the_broker_down_an_audited_read_still_answers_and_its_event_follows_the_broker_back(tmp_path):
    from kafka_broker import PrivateBroker
    broker = PrivateBroker(tmp_path / "kafka")
    broker.start()
    try:
        async with world(tmp_path, broker.bootstrap, MEDFLOW_KAFKA_SEND_TIMEOUT_S="5") as (services, _env, admin, _ids):
            def read(resource_id: str):
                return audit(services, source="/medflow/patients", action="patient.read", resource_type="patient",
                             outcome="success", actor_id=admin.user_id, actor_role="admin",
                             institution_id=admin.institution_id, resource_id=resource_id)

            before = await read("P-1")                           # broker up: published at once
            assert await outbox.pending(services.db) == 0
            broker.kill()
            started = time.monotonic()
            during = await read("P-2")                           # answers after the configured send time-out
            assert time.monotonic() - started < 15
            assert await outbox.pending(services.db) == 1         # kept for the sweep, not lost
            started = time.monotonic()
            next_one = await read("P-3")                         # the outage is known: no second wait
            assert time.monotonic() - started < 2
            assert await outbox.pending(services.db) == 2
            broker.start()
            # the sweep runs every minute in the cluster; here every second until the producer
            # has reconnected (its first attempts after the restart may still time out)
            published, deadline = 0, time.monotonic() + 90
            while published < 2 and time.monotonic() < deadline:
                published += await outbox.sweep_all(services.db, services.bus, older_than_s=0)
                if published < 2:
                    await asyncio.sleep(1)
            assert published == 2
            assert await outbox.pending(services.db) == 0
            assert {before, during, next_one} <= _event_ids_on(broker.bootstrap, services.bus.topic_of(AUDIT_RECORDED))
    finally:
        broker.stop()
        PUBLISH_BREAKER.reset()                                  # process-wide: later tests publish at once
