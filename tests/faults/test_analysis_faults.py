"""The analysis workflow when the model is in trouble, with the real model server behind a
fault injector (tests/model_proxy.py): down, slow, flaky, answering garbage; the circuit
breaker; the reaper; and a worker process SIGKILLed mid-call on the real servers. No task
stays running, none is lost, and a result that fails its schema is never stored."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from datetime import date
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from conftest import (create_mysql_database, delete_topics, drop_mysql_database, real_settings_env, running_platform,
                      unique)
from medflow.analysis.client import KServeClient
from medflow.analysis.reaper import reap
from medflow.analysis.tasks import Submission, submit as submit_task
from medflow.auth.principal import Principal
from medflow.bootstrap import build_services
from medflow.config import Settings
from medflow.db import migrate
from medflow.db.schema import analysis_tasks
from medflow.demo import seed_institutions
from medflow.ids import utcnow
from medflow.records.cases import NewCase, add_item, create_case
from medflow.records.patients import NewPatient, register_patient
from support_processes import REPO, free_port, running, wait_for_line

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from analysis_support import finished, panel_item, submit, urinalysis_content  # noqa: E402
from records_support import actor  # noqa: E402

pytestmark = pytest.mark.timeout(300)
PROXY = [sys.executable, str(Path(__file__).resolve().parents[1] / "model_proxy.py")]
WORKER = [sys.executable, str(Path(__file__).with_name("event_worker_process.py")), "analysis_worker"]
QUICK = {"analysis_model_timeout_s": 1.0, "analysis_model_attempts": 2, "analysis_max_attempts": 2,
         "analysis_lock_ttl_s": 1.0}


@pytest.fixture(scope="module")
def proxy(model_server, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("proxy") / "proxy.log"
    with running([*PROXY, str(port), model_server], {}, log, ready_url=f"http://127.0.0.1:{port}/v2/health/ready"):
        yield f"http://127.0.0.1:{port}"


def set_mode(proxy: str, mode: str, **extra) -> None:
    httpx.put(f"{proxy}/_mode", json={"mode": mode, **extra}).raise_for_status()


def calls(proxy: str) -> dict:
    return httpx.get(f"{proxy}/_calls").json()


@pytest.fixture(params=["embedded", "real"])
async def platform(request, tmp_path, proxy):
    set_mode(proxy, "pass")
    async with running_platform(request.param, tmp_path, models_url=proxy, **QUICK) as client:
        yield client
    set_mode(proxy, "pass")


@pytest.fixture
async def doctor(platform):
    return await actor(platform, "MFGH", "doc.fault", "doctor", "NEPH")


async def states(platform) -> dict[str, int]:
    async with platform.services.db.connect() as conn:
        return dict((await conn.execute(sa.select(analysis_tasks.c.state, sa.func.count())
                                        .group_by(analysis_tasks.c.state))).all())


async def test_a_model_that_is_down_fails_the_task_after_its_attempts(platform, doctor, proxy):
    set_mode(proxy, "down")
    before = calls(proxy)["calls"]
    item = await panel_item(platform, doctor, "MRN-F-1")
    task = await finished(platform, doctor, (await submit(platform, doctor, item, "urinalysis")).json()["id"])
    assert task["state"] == "failed" and task["error_code"] == "model-unavailable" and task["attempts"] == 2
    assert "503" in task["error"] and task["result"] is None
    assert calls(proxy)["calls"] - before <= 4          # 2 deliveries x 2 tries, no more
    assert await states(platform) == {"failed": 1}


async def test_a_slow_model_times_out_and_the_task_fails_with_the_reason(platform, doctor, proxy):
    set_mode(proxy, "slow", delay_s=3.0)
    item = await panel_item(platform, doctor, "MRN-F-2")
    started = time.monotonic()
    task = await finished(platform, doctor, (await submit(platform, doctor, item, "urinalysis")).json()["id"])
    assert task["state"] == "failed" and task["error_code"] == "model-unavailable" and "timed out" in task["error"]
    assert time.monotonic() - started < 20


async def test_a_flaky_model_is_retried_with_backoff_and_the_task_succeeds(platform, doctor, proxy):
    set_mode(proxy, "flaky", n=2)   # the first delivery's two tries fail; the redelivery succeeds
    item = await panel_item(platform, doctor, "MRN-F-3")
    task = await finished(platform, doctor, (await submit(platform, doctor, item, "urinalysis")).json()["id"])
    assert task["state"] == "succeeded" and task["attempts"] == 2 and task["error_code"] is None, task
    assert set(task["result"]["probabilities"]) == {"chronic_kidney_disease", "proteinuria", "acute_kidney_injury_risk",
                                                    "urinary_tract_infection"}


async def test_an_answer_that_fails_its_schema_is_never_stored(platform, doctor, proxy):
    set_mode(proxy, "tamper")
    item = await panel_item(platform, doctor, "MRN-F-4")
    task = await finished(platform, doctor, (await submit(platform, doctor, item, "urinalysis")).json()["id"])
    assert task["state"] == "failed" and task["error_code"] == "invalid-model-output" and task["result"] is None
    assert task["attempts"] == 1                                 # not retried: the model would answer the same


@pytest.mark.parametrize("platform", ["embedded"], indirect=True)
async def test_the_circuit_opens_after_repeated_failures_and_spares_the_model(platform, doctor, proxy):
    set_mode(proxy, "down")
    before = calls(proxy)["calls"]
    items = [await panel_item(platform, doctor, f"MRN-CB-{i}") for i in range(8)]
    ids = [(await submit(platform, doctor, it, "urinalysis")).json()["id"] for it in items]
    tasks = [await finished(platform, doctor, i) for i in ids]
    assert {t["error_code"] for t in tasks} == {"model-unavailable"}
    assert any("circuit" in t["error"] for t in tasks)
    assert calls(proxy)["calls"] - before < 8 * 2 * 2              # the open circuit refused calls
    health = (await platform.get("/healthz")).json()
    breaker = next(b for b in health["circuit_breakers"] if b["name"] == "model-urinalysis")
    assert breaker["state"] in ("open", "half_open") and breaker["rejected"] > 0


async def test_the_reaper_requeues_an_abandoned_task_and_fails_one_stuck_too_long(platform, doctor, proxy):
    services = platform.services
    set_mode(proxy, "down")   # the first delivery cannot finish: the task is ours to shape
    item = await panel_item(platform, doctor, "MRN-RP-1")
    other = await panel_item(platform, doctor, "MRN-RP-2")
    abandoned = (await submit(platform, doctor, item, "urinalysis")).json()["id"]
    stuck = (await submit(platform, doctor, other, "urinalysis")).json()["id"]
    await finished(platform, doctor, abandoned)
    await finished(platform, doctor, stuck)
    past = utcnow().replace(year=2020)
    async with services.db.transaction() as conn:   # as a worker that died mid-call leaves it / an event lost long ago
        await conn.execute(analysis_tasks.update().where(analysis_tasks.c.id == abandoned).values(
            state="running", attempts=1, lease_until=past, result=None, error_code=None, finished_at=None))
        await conn.execute(analysis_tasks.update().where(analysis_tasks.c.id == stuck).values(
            state="queued", attempts=0, requeues=services.settings.analysis_max_requeues, updated_at=past,
            error_code=None, finished_at=None))
    set_mode(proxy, "pass")
    # the model is back, and its circuit (opened by the failures above) with it
    services.use_models(KServeClient(services.settings.models_url, timeout_s=5, attempts=2))
    done = await reap(services)
    assert (done.requeued, done.failed) == (1, 1)
    revived = await finished(platform, doctor, abandoned)
    assert revived["state"] == "succeeded" and revived["attempts"] == 2, revived
    gave_up = await finished(platform, doctor, stuck)
    assert gave_up["state"] == "failed" and gave_up["error_code"] == "stuck"
    assert (await reap(services)) == type(done)(0, 0)           # nothing left to do


async def test_a_worker_killed_mid_call_is_replaced_and_the_task_finishes_once(proxy, tmp_path):
    """On the real servers, the analysis_worker runs as its own process fed by Kafka. It is
    SIGKILLed while the model is answering; a new worker process finishes the task: one
    result, two attempts. (When the event itself is lost, the reaper re-publishes it: the
    reaper test.)"""
    url = create_mysql_database()
    env = real_settings_env(url, unique("af"))
    migrate.upgrade(url)
    settings = Settings(**{k.removeprefix("MEDFLOW_").lower(): v for k, v in env.items()}, data_dir=tmp_path / "data",
                        models_url=proxy, analysis_model_timeout_s=6, analysis_model_attempts=1, analysis_lock_ttl_s=2)
    services = build_services(settings)
    worker_env = {**env, "MEDFLOW_DATA_DIR": str(tmp_path / "worker"), "MEDFLOW_MODELS_URL": proxy,
                  "MEDFLOW_ANALYSIS_MODEL_TIMEOUT_S": "6", "MEDFLOW_ANALYSIS_MODEL_ATTEMPTS": "1",
                  "MEDFLOW_ANALYSIS_LOCK_TTL_S": "2", "MEDFLOW_EVENT_BACKOFF_MAX_S": "1",
                  "MEDFLOW_KAFKA_SESSION_TIMEOUT_S": "10", "PYTHONPATH": str(REPO)}
    try:
        await seed_institutions(services)
        async with services.db.connect() as conn:
            institution_id = (await conn.execute(sa.text("SELECT id FROM institutions WHERE code = 'MFGH'"))).scalar_one()
        pat = await register_patient(services.db, institution_id, NewPatient(mrn="K-1", display_name="Kill Patient",
                                                                         birth_date=date(1961, 2, 3)))
        case = await create_case(services.db, institution_id, NewCase(pat.id, "urinalysis", "LAB", utcnow()), "system")
        item = await add_item(services.db, institution_id, case["id"], "lab_panel", "Urinalysis",
                              urinalysis_content(), "system")
        doctor = Principal("01JFAULTDOCTOR000000000000", "doctor", institution_id)
        set_mode(proxy, "slow", delay_s=4.0)
        log1, log2 = tmp_path / "w1.log", tmp_path / "w2.log"
        with running(WORKER, worker_env, log1) as worker:
            wait_for_line(log1, "ready")
            before = calls(proxy)["calls"]
            task, _ = await submit_task(services.db, services.bus, doctor, Submission(case["id"], item["id"], "urinalysis"))
            await _until(lambda: calls(proxy)["calls"] > before, "the model was never called")
            assert (await _task(services, task["id"]))["state"] == "running"
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
            killed = time.monotonic()
        assert (await _task(services, task["id"]))["state"] == "running"     # abandoned mid-call
        set_mode(proxy, "pass")
        with running(WORKER, worker_env, log2):
            # Once the dead worker's 10 s session has run out, Kafka gives the uncommitted event
            # to the new worker; the dead one's lock has expired, so it claims the task for a
            # second attempt
            wait_for_line(log2, "ready")
            final = await _until_task(services, task["id"], lambda t: t["state"] in ("succeeded", "failed"))
            taken_over_s = time.monotonic() - killed
        assert final["state"] == "succeeded" and final["attempts"] == 2 and final["result"]["probabilities"], \
            {k: final[k] for k in ("state", "attempts", "error_code", "error")}
        assert taken_over_s < 35, f"{taken_over_s:.0f} s: the session time-out set was not used (Kafka's is 45 s)"
        assert (await reap(services)) == type(await reap(services))(0, 0)    # nothing left for the reaper
    finally:
        set_mode(proxy, "pass")
        await services.close()
        delete_topics(env["MEDFLOW_KAFKA_BOOTSTRAP"], env["MEDFLOW_KAFKA_NAMESPACE"] + ".")
        drop_mysql_database(url)


async def _until(check, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def _until_task(services, task_id: str, check, timeout_s: float = 90.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        task = await _task(services, task_id)
        if check(task):
            return task
        assert time.monotonic() < deadline, f"task is {task['state']}"
        await asyncio.sleep(0.1)


async def _task(services, task_id: str) -> dict:
    async with services.db.connect() as conn:
        return dict((await conn.execute(sa.select(analysis_tasks).where(analysis_tasks.c.id == task_id))).mappings().one())
