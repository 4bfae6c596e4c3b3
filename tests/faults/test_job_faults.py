"""Bulk jobs under faults, on the real servers with real processes: a worker killed with
SIGKILL mid-job and started again, a Kafka broker killed and restarted mid-job. The job
finishes with exact counts: no case deleted twice, none missed."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from fault_world import world
from medflow.db.schema import cases, jobs, record_versions
from medflow.jobs.model import JobRequest, submit
from support_processes import REPO, running, wait_for_line

pytestmark = pytest.mark.timeout(420)
ROWS = 1500
WORKER = [sys.executable, str(Path(__file__).with_name("event_worker_process.py")), "job_worker"]


def _worker_env(env: dict[str, str], tmp: Path, **extra: str) -> dict[str, str]:
    return {**env, "MEDFLOW_DATA_DIR": str(tmp / "worker-data"), "MEDFLOW_JOB_BATCH_SIZE": "50",
            "MEDFLOW_JOB_BATCH_PAUSE_S": "0.05", "MEDFLOW_EVENT_BACKOFF_MAX_S": "2",
            "MEDFLOW_KAFKA_SESSION_TIMEOUT_S": "10",      # a killed worker's partitions move on after 10 s
            "PYTHONPATH": str(REPO), **extra}


async def _job(services, job_id: str) -> dict:
    async with services.db.connect() as conn:
        return dict((await conn.execute(sa.select(jobs).where(jobs.c.id == job_id))).mappings().one())


async def _wait(services, job_id: str, check, timeout_s: float, what: str) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = await _job(services, job_id)
        if check(job):
            return job
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: job is {await _job(services, job_id)}")


async def _assert_exact(services, job: dict, ids: list[str]) -> None:
    assert (job["state"], job["total"], job["done"], job["failed"]) == ("succeeded", ROWS, ROWS, 0), job
    async with services.db.connect() as conn:
        deleted = (await conn.execute(sa.select(sa.func.count()).select_from(cases)
                                      .where(cases.c.id.in_(ids), cases.c.deleted_at.is_not(None)))).scalar_one()
        versions = (await conn.execute(sa.select(sa.func.count(), sa.func.count(sa.distinct(record_versions.c.entity_id)))
                                       .where(record_versions.c.entity_id.in_(ids)))).one()
        version_numbers = set((await conn.execute(sa.select(cases.c.version).where(cases.c.id.in_(ids)))).scalars())
    assert deleted == ROWS                      # none missed
    assert tuple(versions) == (ROWS, ROWS)      # one version row per case: none deleted twice
    assert version_numbers == {2}


async def test_a_worker_killed_mid_job_finishes_after_restart_with_exact_counts(tmp_path):
    async with world(tmp_path, rows=ROWS) as (services, env, admin, ids):
        first_log, second_log = tmp_path / "worker-1.log", tmp_path / "worker-2.log"
        with running(WORKER, _worker_env(env, tmp_path), first_log) as worker:
            wait_for_line(first_log, "ready")
            job, _ = await submit(services.db, services.bus, services.catalogue, admin,
                                  JobRequest("delete", filter={"modality": "CT"}), idempotency_key=None,
                                  default_deadline_s=600, max_ids=10_000)
            await _wait(services, job["id"], lambda j: j["done"] >= 300, 90, "no progress before the kill")
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
        killed = await _job(services, job["id"])
        assert killed["state"] == "running" and 0 < killed["done"] < ROWS
        with running(WORKER, _worker_env(env, tmp_path), second_log):
            final = await _wait(services, job["id"], lambda j: j["state"] != "running", 240, "not finished after restart")
        await _assert_exact(services, final, ids)


async def test_the_kafka_broker_killed_and_restarted_mid_job_the_job_finishes(tmp_path):
    from kafka_broker import PrivateBroker
    broker = PrivateBroker(tmp_path / "kafka")
    broker.start()
    try:
        async with world(tmp_path, broker.bootstrap, ROWS) as (services, env, admin, ids):
            log = tmp_path / "worker.log"
            # short slices: the job must hand itself over through Kafka while the broker is down
            with running(WORKER, _worker_env(env, tmp_path, MEDFLOW_JOB_SLICE_S="0.5"), log):
                wait_for_line(log, "ready")
                job, _ = await submit(services.db, services.bus, services.catalogue, admin,
                                      JobRequest("delete", filter={"modality": "CT"}), idempotency_key=None,
                                      default_deadline_s=600, max_ids=10_000)
                await _wait(services, job["id"], lambda j: j["done"] >= 200, 90, "no progress before the broker died")
                broker.kill()
                await asyncio.sleep(3)
                broker.start()
                final = await _wait(services, job["id"], lambda j: j["state"] != "running", 300,
                                    "not finished after the broker came back")
            await _assert_exact(services, final, ids)
    finally:
        broker.stop()


async def test_the_job_worker_function_behind_the_relay_killed_mid_job_resumes_when_it_is_back(tmp_path):
    """The cluster's shape: the job_worker function alone under functions-framework (as its
    Knative Service runs it), fed by the relay (KafkaSource's stand-in). SIGKILLed mid-job,
    the relay's delivery fails and is retried with backoff; the function comes back on its
    port and the job resumes at its checkpoint."""
    from support_processes import BIN, free_port, function_command
    async with world(tmp_path, rows=ROWS) as (services, env, admin, ids):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        function_env = _worker_env(env, tmp_path, MEDFLOW_JOB_SLICE_S="5")
        relay = [str(BIN / "medflow"), "relay", "--bootstrap", env["MEDFLOW_KAFKA_BOOTSTRAP"],
                 "--namespace", env["MEDFLOW_KAFKA_NAMESPACE"], "--route", f"job_worker={url}/=org.medflow.jobs.requested.v1"]
        with running(relay, env, tmp_path / "relay.log"):
            with running(function_command("job_worker", port), function_env, tmp_path / "fn-1.log", f"{url}/healthz") as fn:
                job, _ = await submit(services.db, services.bus, services.catalogue, admin,
                                      JobRequest("delete", filter={"modality": "CT"}), idempotency_key=None,
                                      default_deadline_s=600, max_ids=10_000)
                await _wait(services, job["id"], lambda j: j["done"] >= 300, 120, "no progress before the kill")
                os.killpg(fn.pid, signal.SIGKILL)
                fn.wait(10)
            assert (await _job(services, job["id"]))["state"] == "running"
            with running(function_command("job_worker", port), function_env, tmp_path / "fn-2.log", f"{url}/healthz"):
                final = await _wait(services, job["id"], lambda j: j["state"] != "running", 240, "not finished after restart")
        await _assert_exact(services, final, ids)
