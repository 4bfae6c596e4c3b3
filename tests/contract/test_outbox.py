"""The transactional outbox on SQLite and MariaDB: a job row and its events commit together;
a publish lost after the commit is made good by the sweep; a rolled-back change sends nothing."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from medflow.auth.principal import Principal
from medflow.bus.catalogue import Catalogue
from medflow.bus.events import make_event
from medflow.bus.memory import MemoryEventBus
from medflow.bus.outbox import pending, stage, sweep, sweep_all
from medflow.db.schema import institutions, jobs
from medflow.errors import TransientError
from medflow.ids import new_id, utcnow
from medflow.jobs.model import JOB_REQUESTED, JobRequest, submit


class DownBus:
    async def publish(self, event):
        raise TransientError("broker unreachable")


async def _institution(db) -> str:
    institution_id, now = new_id(), utcnow()
    async with db.transaction() as conn:
        await conn.execute(institutions.insert().values(id=institution_id, code=f"I{institution_id[-6:]}", name="Outbox",
                                                        created_at=now, updated_at=now))
    return institution_id


async def _delivered(publish) -> tuple[int, list]:
    """Run ``publish(bus)`` against an in-process bus; -> (its result, the events delivered)."""
    bus, seen = MemoryEventBus(), []

    async def handler(event):
        seen.append(event)
    bus.subscribe("g", ["org.medflow.*"], handler)
    await bus.start()
    try:
        result = await publish(bus)
        await bus.wait_idle()
    finally:
        await bus.stop()
    return result, seen


async def test_a_lost_publish_is_made_good_by_the_sweep(database):
    institution_id = await _institution(database)
    who = Principal(new_id(), "admin", institution_id)
    job, created = await submit(database, DownBus(), Catalogue(), who, JobRequest("export"), idempotency_key="k1",
                                default_deadline_s=60, max_ids=10)
    assert created and job["state"] == "queued"            # accepted although the broker was down
    assert await pending(database) == 2                    # the job event and its audit event wait

    swept, seen = await _delivered(lambda bus: sweep(database, bus, older_than_s=0))
    assert swept == 2
    assert sorted(e["type"] for e in seen) == ["org.medflow.audit.recorded.v1", JOB_REQUESTED]
    assert await pending(database) == 0 and await sweep(database, MemoryEventBus(), older_than_s=0) == 0


async def test_a_rolled_back_change_leaves_no_event(database):
    event = make_event(JOB_REQUESTED, "/medflow/jobs", new_id(), {"job_id": new_id(), "institution_id": new_id(), "kind": "delete"})
    with pytest.raises(RuntimeError):
        async with database.transaction() as conn:
            await stage(conn, [event])
            raise RuntimeError("the change failed")
    assert await pending(database) == 0
    async with database.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(jobs))).scalar_one() == 0


def test_a_consumer_may_have_its_own_delivery_rules():
    from medflow.bus.ports import DeliveryPolicy
    consumers = {c.function: c for c in Catalogue().consumers}
    default = DeliveryPolicy(5, 0.2, 10.0)
    assert consumers["audit_sink"].policy(default) == default
    assert consumers["job_worker"].policy(default) == DeliveryPolicy(10, 0.5, 10.0)


async def test_the_periodic_sweep_publishes_every_page_and_stops_while_the_broker_is_down(database):
    events = [make_event(JOB_REQUESTED, "/medflow/jobs", new_id(), {"job_id": new_id(), "institution_id": new_id(),
                                                                      "kind": "delete"}) for _ in range(5)]
    async with database.transaction() as conn:
        await stage(conn, events)

    assert await sweep_all(database, DownBus(), older_than_s=0, limit=2) == 0     # returns, does not spin
    assert await pending(database) == 5

    swept, seen = await _delivered(lambda bus: sweep_all(database, bus, older_than_s=0, limit=2))
    assert swept == 5                                                             # pages of 2, 2 and 1
    assert sorted(e["id"] for e in seen) == sorted(e["id"] for e in events) and await pending(database) == 0


async def test_the_outbox_sweep_command_publishes_what_a_crash_left_behind(tmp_path):
    """``medflow outbox sweep`` (the cluster's CronJob) on the embedded settings: an event
    committed with its change but never published is sent, and the outbox is empty after."""
    import asyncio
    import os
    import subprocess
    import sys
    from datetime import timedelta

    from medflow.db import migrate
    from medflow.db.engine import Database
    from medflow.db.schema import event_outbox

    url = f"sqlite+aiosqlite:///{tmp_path / 'medflow.db'}"
    migrate.upgrade(url)
    db = Database(url)
    try:
        event = make_event(JOB_REQUESTED, "/medflow/jobs", new_id(), {"job_id": new_id(), "institution_id": new_id(),
                                                                      "kind": "delete"})
        async with db.transaction() as conn:
            await stage(conn, [event])
            await conn.execute(event_outbox.update().values(created_at=utcnow() - timedelta(minutes=5)))
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEDFLOW_")}
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "medflow.cli", "outbox", "sweep"], capture_output=True, text=True,
            timeout=120, env={**env, "MEDFLOW_DATA_DIR": str(tmp_path), "MEDFLOW_DATABASE_URL": url})
        assert done.returncode == 0, done.stderr[-2000:]
        assert "outbox sweep: 1 event(s) published" in done.stdout
        assert await pending(db) == 0
    finally:
        await db.close()
