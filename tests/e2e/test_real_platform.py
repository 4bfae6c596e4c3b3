"""End to end on the real servers (MariaDB, Redis, Kafka, MinIO):

- a function started alone with functions-framework, as its Knative Service runs it;
- events published to Kafka, relayed over HTTP to the audit sink started alone: one row
  per event even when delivered twice; an event that can never succeed is dead-lettered;
- the one-process server configured for the real servers, by environment alone.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from conftest import create_mysql_database, drop_mysql_database, real_setting, real_settings_env, unique
from support_processes import BIN, free_port, function_command, running, serve_command
from medflow.audit.trail import AUDIT_RECORDED
from medflow.bus.catalogue import Catalogue
from medflow.bus.events import make_event
from medflow.db import migrate
from medflow.db.engine import sync_url
from medflow.db.schema import audit_log, departments, institutions
from medflow.ids import new_id, utcnow

AUDIT = {"occurred_at": "2026-11-21T10:00:00+00:00", "action": "record.read", "resource_type": "case",
         "outcome": "success", "actor_role": "doctor"}


@pytest.fixture(scope="module")
def real_db():
    url = create_mysql_database()
    migrate.upgrade(url)
    yield url
    drop_mysql_database(url)


@pytest.fixture(scope="module")
def real_env(real_db):
    from conftest import delete_topics
    env = real_settings_env(real_db, unique("e2e"))
    yield env
    delete_topics(env["MEDFLOW_KAFKA_BOOTSTRAP"], env["MEDFLOW_KAFKA_NAMESPACE"] + ".")


def _sql(url: str):
    return sa.create_engine(sync_url(url))


def _seed_institution(url: str, code: str, departments_: list[str]) -> str:
    engine, now, institution_id = _sql(url), utcnow(), new_id()
    with engine.begin() as conn:
        conn.execute(institutions.insert().values(id=institution_id, code=code, name=f"Hospital {code}",
                                                  created_at=now, updated_at=now))
        for dep in departments_:
            conn.execute(departments.insert().values(id=new_id(), institution_id=institution_id, code=dep, name=dep,
                                                     created_at=now, updated_at=now))
    engine.dispose()
    return institution_id


def _audit_count(url: str, event_id: str) -> int:
    engine = _sql(url)
    with engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(audit_log).where(audit_log.c.event_id == event_id)).scalar_one()
    engine.dispose()
    return count


def _wait_for(predicate, timeout_s: float = 45.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_function_started_alone_serves_from_mariadb_and_redis(real_db, real_env, tmp_path):
    institution_id = _seed_institution(real_db, unique("S"), ["RAD", "CARD"])
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with running(function_command("directory", port), real_env, tmp_path / "directory.log", f"{base}/healthz"):
        health = httpx.get(f"{base}/healthz").json()
        assert health["checks"] == {"database": True, "cache": True, "objects": True}
        listed = httpx.get(f"{base}/institutions").json()["items"]
        assert institution_id in [i["id"] for i in listed]
        first = httpx.get(f"{base}/institutions/{institution_id}/departments").json()["items"]
        assert sorted(d["code"] for d in first) == ["CARD", "RAD"]
        bad = httpx.get(f"{base}/institutions", params={"cursor": "tampered"})
        assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"
        assert httpx.get(f"{base}/openapi.json").json()["paths"].keys() >= {"/institutions"}


async def _publish(bootstrap: str, namespace: str, *events) -> None:
    from medflow.bus.kafka import KafkaEventBus
    events_catalogue = Catalogue(namespace=namespace)
    bus = KafkaEventBus(bootstrap, topic_for=events_catalogue.topic_for, dead_letter_topic_for=events_catalogue.dead_letter_topic)
    try:
        for event in events:
            await bus.publish(event)
    finally:
        await bus.stop()


@contextmanager
def audit_sink_behind_relay(env: dict[str, str], logs: Path, group: str, max_attempts: int):
    """The audit sink started alone, fed from Kafka by the relay under a fresh consumer group."""
    port = free_port()
    sink_url = f"http://127.0.0.1:{port}"
    relay = [str(BIN / "medflow"), "relay", "--bootstrap", real_setting("MEDFLOW_TEST_KAFKA_BOOTSTRAP"),
             "--namespace", env["MEDFLOW_KAFKA_NAMESPACE"], "--max-attempts", str(max_attempts),
             "--route", f"{group}={sink_url}/=org.medflow.audit.*"]
    with running(function_command("audit_sink", port), env, logs / "sink.log", f"{sink_url}/healthz"), \
         running(relay, env, logs / "relay.log"):
        yield


def test_kafka_to_audit_sink_makes_exactly_one_row_even_when_delivered_twice(real_db, real_env, tmp_path):
    bootstrap = real_setting("MEDFLOW_TEST_KAFKA_BOOTSTRAP")
    subject = unique("case-")
    twice = make_event(AUDIT_RECORDED, "/medflow/e2e", subject, {**AUDIT, "resource_id": subject})
    marker = make_event(AUDIT_RECORDED, "/medflow/e2e", subject, {**AUDIT, "resource_id": subject, "action": "record.marker"})
    with audit_sink_behind_relay(real_env, tmp_path, unique("audit_sink_e2e_"), max_attempts=2):
        asyncio.run(_publish(bootstrap, real_env["MEDFLOW_KAFKA_NAMESPACE"], twice, twice, marker))  # same subject: same partition, in order
        _wait_for(lambda: _audit_count(real_db, marker["id"]) == 1, what="the marker row")
        assert _audit_count(real_db, twice["id"]) == 1
    sink_log = (tmp_path / "sink.log").read_text()
    assert sink_log.count(twice["id"]) >= 2  # it really was delivered twice


def test_an_event_that_can_never_succeed_is_dead_lettered_not_retried(real_db, real_env, tmp_path):
    bootstrap = real_setting("MEDFLOW_TEST_KAFKA_BOOTSTRAP")
    group = unique("audit_sink_dlq_")
    subject = unique("case-")
    invalid = make_event(AUDIT_RECORDED, "/medflow/e2e", subject, {**AUDIT, "outcome": "perhaps"})

    async def dead_letters():
        from medflow.bus.kafka import KafkaEventBus
        c = Catalogue(namespace=real_env["MEDFLOW_KAFKA_NAMESPACE"])
        bus = KafkaEventBus(bootstrap, topic_for=c.topic_for, dead_letter_topic_for=c.dead_letter_topic)
        try:
            return await bus.dead_letters(c.namespace + group)
        finally:
            await bus.stop()

    with audit_sink_behind_relay(real_env, tmp_path, group, max_attempts=3):
        asyncio.run(_publish(bootstrap, real_env["MEDFLOW_KAFKA_NAMESPACE"], invalid))
        found: list = []  # a new group reads the topic from the start: older runs' letters may be there too

        def ours() -> bool:
            found[:] = [d for d in asyncio.run(dead_letters()) if d.event["id"] == invalid["id"]]
            return bool(found)

        _wait_for(ours, what="the dead letter")
    assert len(found) == 1
    letter = found[0]
    assert letter.event["id"] == invalid["id"] and letter.event.data == invalid.data
    assert letter.attempts == 1 and "400" in letter.reason
    assert _audit_count(real_db, invalid["id"]) == 0


def test_the_one_process_server_runs_on_the_real_servers_by_configuration_alone(real_env, tmp_path):
    db_url = create_mysql_database()
    env = {**real_env, "MEDFLOW_DATABASE_URL": db_url, "MEDFLOW_DATA_DIR": str(tmp_path / "data"),
           "MEDFLOW_KAFKA_NAMESPACE": unique("srv")}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    try:
        with running(serve_command(port, "--demo"), env, tmp_path / "server.log", f"{base}/healthz", timeout_s=90):
            assert httpx.get(f"{base}/healthz").json()["checks"] == {"database": True, "cache": True, "objects": True}
            names = [i["name"] for i in httpx.get(f"{base}/api/directory/institutions").json()["items"]]
            assert "MedFlow General Hospital" in names

            def seeded_audit_rows() -> int:
                engine = _sql(db_url)
                with engine.connect() as conn:
                    n = conn.execute(sa.select(sa.func.count()).select_from(audit_log)
                                     .where(audit_log.c.action == "demo.seeded",
                                            audit_log.c.resource_type == "institution")).scalar_one()
                engine.dispose()
                return n

            _wait_for(lambda: seeded_audit_rows() == 3, what="one audit row per demo institution, through Kafka")
    finally:
        drop_mysql_database(db_url)
