"""The transactional outbox on SQLite and MariaDB: a job row and its events commit together;
a publish lost after the commit is made good by the sweep; a rolled-back change sends nothing."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from medflow.auth.principal import Principal
from medflow.bus.catalogue import Catalogue
from medflow.bus.events import make_event
from medflow.bus.memory import MemoryEventBus
from medflow.bus.outbox import pending, stage, sweep
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


async def test_a_lost_publish_is_made_good_by_the_sweep(database):
    institution_id = await _institution(database)
    who = Principal(new_id(), "admin", institution_id)
    job, created = await submit(database, DownBus(), Catalogue(), who, JobRequest("export"), idempotency_key="k1",
                                default_deadline_s=60, max_ids=10)
    assert created and job["state"] == "queued"            # accepted although the broker was down
    assert await pending(database) == 2                    # the job event and its audit event wait

    bus, seen = MemoryEventBus(), []

    async def handler(event):
        seen.append(event["type"])
    bus.subscribe("g", ["org.medflow.*"], handler)
    await bus.start()
    try:
        assert await sweep(database, bus, older_than_s=0) == 2
        await bus.wait_idle()
    finally:
        await bus.stop()
    assert sorted(seen) == ["org.medflow.audit.recorded.v1", JOB_REQUESTED]
    assert await pending(database) == 0 and await sweep(database, bus, older_than_s=0) == 0


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
