"""The job worker as a CloudEvent consumer: the HTTP door's contract for malformed events,
one effect for duplicate and out-of-order deliveries, poison events dead-lettered while
the rest flow on, dead letters listed and replayed (audited), lag and alert thresholds."""

from __future__ import annotations

import asyncio
import json

import sqlalchemy as sa

from medflow.bus.delivery import deliver
from medflow.bus.events import make_event, to_http
from medflow.bus.ports import DeliveryPolicy, Outcome
from medflow.db.schema import audit_log, cases, record_versions
from medflow.ids import new_id
from medflow.jobs.model import JOB_REQUESTED, JobRequest, submit
from medflow.auth.principal import Principal
from medflow.runtime.events import EventRuntime
from medflow.runtime.registry import load_specs
from medflow.runtime.services import ServiceHolder
from jobs_support import insert_cases, wait_for_job
from records_support import actor, patient

DOOR = "/api/job_worker/"


def _worker(platform) -> EventRuntime:
    spec = next(s for s in load_specs() if s.name == "job_worker")
    return EventRuntime(spec, ServiceHolder(services=platform.services))


async def _queued_job(platform, admin, ids) -> dict:
    """A job row without its event reaching the worker (published to nobody)."""
    s = platform.services
    who = Principal(admin.user_id, "admin", admin.institution_id)

    class Nowhere:
        async def publish(self, event):
            pass
    job, _ = await submit(s.db, Nowhere(), s.catalogue, who, JobRequest("delete", case_ids=ids),
                          idempotency_key=None, default_deadline_s=600, max_ids=1000)
    return job


def _event(job: dict, **data) -> object:
    return make_event(JOB_REQUESTED, "/medflow/jobs", job["id"], {"job_id": job["id"], "institution_id": job["institution_id"],
                                                                  "kind": job["kind"], **data})


async def test_malformed_cloudevents_at_the_http_door_are_refused_and_nothing_is_done(platform):
    admin = await actor(platform, "MFGH", "adm.door", "admin")
    doctor = await actor(platform, "MFGH", "doc.door", "doctor")
    ids = await insert_cases(platform.services.db, admin.institution_id, (await patient(platform, doctor, "D-1"))["id"], 3)
    job = await _queued_job(platform, admin, ids)
    headers, body = to_http(_event(job))

    missing = {k: v for k, v in headers.items() if k.lower() != "ce-specversion"}
    assert (await platform.post(DOOR, headers=missing, content=body)).status_code == 400
    no_id = {k: v for k, v in headers.items() if k.lower() != "ce-id"}
    assert (await platform.post(DOOR, headers=no_id, content=body)).json()["code"] == "malformed-cloudevent"
    wrong_schema = json.dumps({"job_id": job["id"], "kind": "shred"}).encode()
    answer = await platform.post(DOOR, headers=headers, content=wrong_schema)
    assert answer.status_code == 400 and answer.json()["code"] == "event-rejected"
    assert (await platform.post(DOOR, headers={**headers, "content-type": "text/plain"}, content=body)).status_code == 415
    assert (await platform.post(DOOR, headers={**headers, "ce-type": "org.medflow.audit.recorded.v1"},
                                content=body)).status_code == 400
    unknown = _event({**job, "id": new_id()})
    h2, b2 = to_http(unknown)
    assert (await platform.post(DOOR, headers=h2, content=b2)).status_code == 400   # no such job: never succeeds
    status = (await platform.get(f"/api/jobs/jobs/{job['id']}", headers=admin.headers)).json()
    assert status["state"] == "queued" and status["done"] == 0

    good = await platform.post(DOOR, headers=headers, content=body)    # the well-formed one does the work
    assert good.status_code == 204
    assert (await wait_for_job(platform, admin, job["id"]))["done"] == 3


async def test_the_same_event_twice_at_once_and_events_out_of_order_have_one_effect_each(platform):
    s = platform.services
    s.settings = s.settings.model_copy(update={"job_batch_size": 3, "job_batch_pause_s": 0.01})
    admin = await actor(platform, "MFGH", "adm.dup", "admin")
    doctor = await actor(platform, "MFGH", "doc.dup", "doctor")
    pid = (await patient(platform, doctor, "D-2"))["id"]
    first_ids = await insert_cases(s.db, admin.institution_id, pid, 20)
    second_ids = await insert_cases(s.db, admin.institution_id, pid, 10)
    first, second = await _queued_job(platform, admin, first_ids), await _queued_job(platform, admin, second_ids)
    worker = _worker(platform)
    policy = DeliveryPolicy(max_attempts=1000, backoff_initial_s=0.05, backoff_max_s=0.3)  # outlast the holder, even on a loaded machine
    event = _event(first)
    results = await asyncio.gather(deliver(event, worker.deliver, policy, "t"), deliver(event, worker.deliver, policy, "t"),
                                   deliver(_event(second, continuation=3), worker.deliver, policy, "t"),
                                   deliver(_event(second), worker.deliver, policy, "t"))
    assert all(r.outcome is Outcome.DONE for r in results), results
    for job, ids in ((first, first_ids), (second, second_ids)):
        status = (await platform.get(f"/api/jobs/jobs/{job['id']}", headers=admin.headers)).json()
        assert (status["state"], status["done"], status["failed"]) == ("succeeded", len(ids), 0)
    async with s.db.connect() as conn:
        per_case = (await conn.execute(sa.select(sa.func.count()).select_from(record_versions)
                                       .where(record_versions.c.entity_id.in_(first_ids + second_ids)))).scalar_one()
        deleted = (await conn.execute(sa.select(sa.func.count()).select_from(cases)
                                      .where(cases.c.id.in_(first_ids + second_ids), cases.c.deleted_at.is_not(None)))).scalar_one()
    assert per_case == deleted == 30
    assert await worker.deliver(event) is None            # a late redelivery: nothing more to do


async def _eventually(check, timeout_s: float = 60.0):
    for _ in range(int(timeout_s / 0.1)):
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached")


async def test_a_poison_event_is_dead_lettered_the_rest_flow_on_and_an_admin_replays_it(platform):
    s = platform.services
    admin = await actor(platform, "MFGH", "adm.dlq", "admin")
    doctor = await actor(platform, "MFGH", "doc.dlq", "doctor")
    other_admin = await actor(platform, "RRH", "adm.dlq2", "admin")
    ids = await insert_cases(s.db, admin.institution_id, (await patient(platform, doctor, "D-3"))["id"], 4)
    poison = make_event(JOB_REQUESTED, "/medflow/jobs", "01JPOISON00000000000000000",
                        {"job_id": "01JPOISON00000000000000000", "institution_id": admin.institution_id, "kind": "delete"})
    await s.bus.publish(poison)
    job = (await platform.post("/api/jobs/jobs", headers=admin.headers, json={"kind": "delete", "case_ids": ids})).json()
    assert (await wait_for_job(platform, admin, job["id"]))["done"] == 4           # the rest flow on

    async def listed():
        body = (await platform.get("/api/jobs/dead-letters", headers=admin.headers, params={"group": "job_worker"})).json()
        return [d for d in body["items"] if d["event_id"] == poison["id"]]
    letter = (await _eventually(listed))[0]
    assert letter["type"] == JOB_REQUESTED and "no such job" in letter["reason"] and letter["data_keys"]
    others = (await platform.get("/api/jobs/dead-letters", headers=other_admin.headers)).json()["items"]
    assert poison["id"] not in [d["event_id"] for d in others]
    assert (await platform.get("/api/jobs/dead-letters", headers=doctor.headers)).status_code == 403
    assert (await platform.get("/api/jobs/dead-letters", headers=admin.headers,
                               params={"group": "nobody_here"})).status_code == 404

    alert = await platform.put("/api/jobs/alerts", headers=admin.headers,
                               json={"metric": "dead_letters", "consumer_group": "job_worker", "threshold": 0})
    assert alert.status_code == 200, alert.text
    assert alert.json()["items"] == [{"metric": "dead_letters", "consumer_group": "job_worker", "threshold": 0,
                                      "value": alert.json()["items"][0]["value"], "crossed": True}]
    await platform.put("/api/jobs/alerts", headers=admin.headers,
                       json={"metric": "lag", "consumer_group": "job_worker", "threshold": 1000})
    items = {a["metric"]: a for a in (await platform.get("/api/jobs/alerts", headers=admin.headers)).json()["items"]}
    assert items["lag"]["crossed"] is False and items["dead_letters"]["value"] >= 1
    lag = (await platform.get("/api/jobs/lag", headers=admin.headers)).json()
    assert any(row["group"] == "job_worker" for row in lag["items"]) and lag["dead_letters"]["job_worker"] >= 1

    replayed = await platform.post("/api/jobs/dead-letters/replay", headers=admin.headers,
                                   json={"group": "job_worker", "event_id": poison["id"]})
    assert replayed.status_code == 202, replayed.text
    assert (await platform.post("/api/jobs/dead-letters/replay", headers=other_admin.headers,
                                json={"group": "job_worker", "event_id": poison["id"]})).status_code == 403

    async def audited():
        async with s.db.connect() as conn:
            return (await conn.execute(sa.select(audit_log.c.actor_id).where(
                audit_log.c.action == "deadletter.replayed", audit_log.c.resource_id == poison["id"]))).scalars().all()
    assert await _eventually(audited) == [admin.user_id]
    # still poison: dead-lettered again, nothing else happened
    await _eventually(lambda: _count_letters(platform, admin, poison["id"], 2))


async def _count_letters(platform, admin, event_id, n):
    body = (await platform.get("/api/jobs/dead-letters", headers=admin.headers)).json()
    return sum(d["event_id"] == event_id for d in body["items"]) >= n
