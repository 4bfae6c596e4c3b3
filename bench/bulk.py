"""Bulk jobs on real MariaDB + Kafka (+ Redis, MinIO): 100,000 cases deleted synchronously
in one request vs submitted as a job, and exported to xlsx.

    .venv/bin/python bench/bulk.py [--rows 100000] [--submits 300] [--batch 2000]

What it does (one run, one dedicated database ``medflow_bench_bulk``, rebuilt each run)
    1. Loads ``--rows`` cases of one institution (``INSERT … SELECT`` from MariaDB's SEQUENCE
       engine; every index of the real schema in place).
    2. Submit latency first (step 3's submits), on the freshly loaded table.
    2b. Baseline, synchronous: the bulk soft-delete of every case done inside one request —
       the worker's batch loop (same SQL: a version row per case, checkpoint per batch)
       run inline until done, timed from start to the last commit. Then undone.
    3. Asynchronous: ``--submits`` ``POST /jobs`` requests to the ``jobs`` function (its HTTP
       runtime in this process over ASGI: auth, validation, the filter check, the job row +
       outbox in one transaction, the Kafka publish acknowledged with acks=all), on a Kafka
       namespace nobody consumes, one after another; P99 of their wall time. Then one real
       job: the ``job_worker`` function in its own process, fed by Kafka, deletes every case;
       the job's duration is ``finished_at - created_at`` (queue time included).
    4. Export: a full xlsx export of the cases (``--rows`` and ``--rows / 5``), each in a
       fresh process: wall time and that process's peak RSS (``ru_maxrss``), to show the
       memory does not grow with the row count.

Writes ``bench/results/bulk.json`` and a line in ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from record import record  # noqa: E402

from medflow.auth.principal import Principal  # noqa: E402
from medflow.auth.tokens import issue_access_token  # noqa: E402
from medflow.bootstrap import build_services  # noqa: E402
from medflow.config import Settings  # noqa: E402
from medflow.db import migrate  # noqa: E402
from medflow.db.engine import sync_url  # noqa: E402
from medflow.db.schema import cases, institutions, jobs, patients, persons, record_versions, users  # noqa: E402
from medflow.ids import utcnow  # noqa: E402

DATABASE = "medflow_bench_bulk"
INSTITUTION = "01JBENCHBULK00000000000INS"
ADMIN = "01JBENCHBULK0000000000ADMN"
PATIENT = "01JBENCHBULK00000000000PAT"
WORK = REPO / "bench" / ".work" / "bulk"


def bench_url() -> str:
    base = os.environ.get("MEDFLOW_TEST_MYSQL_URL") or sys.exit("source .local/infra/env.sh first (MEDFLOW_TEST_MYSQL_URL)")
    return make_url(base).set(database=DATABASE).render_as_string(hide_password=False)


def settings(url: str, namespace: str, **extra) -> Settings:
    env = os.environ
    return Settings(database_url=url, redis_url=env["MEDFLOW_TEST_REDIS_URL"], kafka_bootstrap=env["MEDFLOW_TEST_KAFKA_BOOTSTRAP"],
                    s3_endpoint=env["MEDFLOW_TEST_S3_ENDPOINT"], s3_access_key=env["MEDFLOW_TEST_S3_ACCESS_KEY"],
                    s3_secret_key=env["MEDFLOW_TEST_S3_SECRET_KEY"], s3_bucket_prefix="benchbulk",
                    kafka_namespace=namespace, cache_namespace=namespace, data_dir=WORK, **extra)


def worker_env(url: str, namespace: str, batch: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDFLOW_") or k.startswith("MEDFLOW_TEST_")}
    env.update(MEDFLOW_DATABASE_URL=url, MEDFLOW_REDIS_URL=os.environ["MEDFLOW_TEST_REDIS_URL"],
               MEDFLOW_KAFKA_BOOTSTRAP=os.environ["MEDFLOW_TEST_KAFKA_BOOTSTRAP"],
               MEDFLOW_S3_ENDPOINT=os.environ["MEDFLOW_TEST_S3_ENDPOINT"],
               MEDFLOW_S3_ACCESS_KEY=os.environ["MEDFLOW_TEST_S3_ACCESS_KEY"],
               MEDFLOW_S3_SECRET_KEY=os.environ["MEDFLOW_TEST_S3_SECRET_KEY"], MEDFLOW_S3_BUCKET_PREFIX="benchbulk",
               MEDFLOW_KAFKA_NAMESPACE=namespace, MEDFLOW_CACHE_NAMESPACE=namespace, MEDFLOW_DATA_DIR=str(WORK),
               MEDFLOW_JOB_BATCH_SIZE=str(batch), MEDFLOW_LOG_LEVEL="WARNING", PYTHONPATH=str(REPO))
    return env


def build_database(url: str, rows: int) -> float:
    admin = sa.create_engine(sync_url(make_url(url).set(database=make_url(os.environ["MEDFLOW_TEST_MYSQL_URL"]).database)))
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{DATABASE}`")
        conn.exec_driver_sql(f"CREATE DATABASE `{DATABASE}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    admin.dispose()
    migrate.upgrade(url)
    engine = sa.create_engine(sync_url(url))
    started = time.perf_counter()
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(institutions.insert().values(id=INSTITUTION, code="BULK", name="Bulk bench", created_at=now, updated_at=now))
        conn.execute(users.insert().values(id=ADMIN, institution_id=INSTITUTION, username="bulkadmin", role="admin",
                                           display_name="Bulk admin", created_at=now, updated_at=now))
        conn.execute(persons.insert().values(id=PATIENT, created_at=now))
        conn.execute(patients.insert().values(id=PATIENT, institution_id=INSTITUTION, person_id=PATIENT, mrn="BULK-1",
                                              display_name="Bulk patient", created_at=now, updated_at=now))
        conn.exec_driver_sql("SET SESSION foreign_key_checks=0, unique_checks=0")
        conn.exec_driver_sql(
            "INSERT INTO cases (id, institution_id, patient_id, exam_type, modality, exam_time, status, annotation_status,"
            " quality_label, title, diagnosis_codes, version, created_at, updated_at) "
            f"SELECT CONCAT('01JBULK', LPAD(seq, 19, '0')), '{INSTITUTION}', '{PATIENT}', 'ct_head', 'CT',"
            " TIMESTAMP('2026-01-01') + INTERVAL seq SECOND, 'final', 'none', 'unchecked', CONCAT('Head CT ', seq),"
            f" '[]', 1, NOW(6), NOW(6) FROM seq_1_to_{rows}")
    engine.dispose()
    return time.perf_counter() - started


def undo_deletes(url: str) -> None:
    engine = sa.create_engine(sync_url(url))
    with engine.begin() as conn:
        conn.execute(cases.update().values(deleted_at=None, version=1))
        conn.execute(record_versions.delete())
        conn.execute(jobs.delete())
    engine.dispose()


async def sync_delete(url: str, batch: int) -> tuple[float, int]:
    """The baseline: the whole bulk delete inside one request (no queue, no worker)."""
    from medflow.jobs.model import JobRequest, submit
    from medflow.jobs.worker import _start, run_batch
    services = build_services(settings(url, "benchbulk-sync", job_batch_size=batch))
    try:
        class Nowhere:
            async def publish(self, event):
                pass
        who = Principal(ADMIN, "admin", INSTITUTION)
        started = time.perf_counter()
        job, _ = await submit(services.db, Nowhere(), services.catalogue, who, JobRequest("delete", filter={"modality": "CT"}),
                              idempotency_key=None, default_deadline_s=3600, max_ids=10)
        await _start(services.db, job)
        job = {**job, "state": "running"}
        deleted = 0
        while (result := await run_batch(services, job, batch)).handled:
            deleted += result.done
        return time.perf_counter() - started, deleted
    finally:
        await services.close()


async def submit_latencies(url: str, submits: int) -> list[float]:
    """``POST /jobs`` through the jobs function's HTTP runtime, on a namespace nobody consumes."""
    import httpx
    from starlette.applications import Starlette
    from starlette.routing import Route

    from medflow.runtime.entry import runtime_for
    from medflow.runtime.registry import load_specs
    from medflow.runtime.services import ServiceHolder

    namespace = f"benchbulk-lat-{secrets.token_hex(3)}"
    services = build_services(settings(url, namespace))
    runtime = runtime_for(next(s for s in load_specs() if s.name == "jobs"), ServiceHolder(services=services))

    async def endpoint(request):
        return await runtime.handle(request, "/" + request.path_params["path"])

    app = Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST"])])
    token = issue_access_token(services.keys, Principal(ADMIN, "admin", INSTITUTION), issuer=services.settings.jwt_issuer,
                               now=utcnow(), ttl_s=3600).token
    headers = {"authorization": f"Bearer {token}"}
    timings = []
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://jobs") as client:
            for n in range(submits + 10):
                started = time.perf_counter()
                response = await client.post("/jobs", headers={**headers, "Idempotency-Key": f"bench-{n}"},
                                             json={"kind": "delete", "filter": {"modality": "CT"}})
                elapsed = (time.perf_counter() - started) * 1000
                assert response.status_code == 202, response.text
                if n >= 10:          # the first ones warm connections and caches
                    timings.append(elapsed)
        async with services.db.transaction() as conn:
            await conn.execute(jobs.delete())
    finally:
        await services.close()
        _delete_topics(namespace)
    return timings


async def async_job(url: str, batch: int) -> tuple[float, float, int]:
    """One real job: submitted (timed), run by the job_worker process fed by Kafka."""
    from medflow.jobs.model import JobRequest, submit
    namespace = f"benchbulk-job-{secrets.token_hex(3)}"
    services = build_services(settings(url, namespace))
    log = open(WORK / "job_worker.log", "wb")
    worker = subprocess.Popen([sys.executable, str(REPO / "tests" / "faults" / "event_worker_process.py"), "job_worker"], cwd=REPO,
                              env=worker_env(url, namespace, batch), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while "ready" not in (WORK / "job_worker.log").read_text(errors="replace"):
            if worker.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"job worker did not start; see {WORK / 'job_worker.log'}")
            await asyncio.sleep(0.2)
        started = time.perf_counter()
        job, _ = await submit(services.db, services.bus, services.catalogue, Principal(ADMIN, "admin", INSTITUTION),
                              JobRequest("delete", filter={"modality": "CT"}), idempotency_key=None,
                              default_deadline_s=3600, max_ids=10)
        submit_ms = (time.perf_counter() - started) * 1000
        while True:
            async with services.db.connect() as conn:
                row = (await conn.execute(sa.select(jobs).where(jobs.c.id == job["id"]))).mappings().one()
            if row["state"] not in ("queued", "running"):
                break
            await asyncio.sleep(0.05)
        assert row["state"] == "succeeded", dict(row)
        return (row["finished_at"] - row["created_at"]).total_seconds(), submit_ms, row["done"]
    finally:
        worker.terminate()
        worker.wait(10)
        log.close()
        await services.close()
        _delete_topics(namespace)


EXPORT_CHILD = r'''
import asyncio, json, resource, sys, time
sys.path.insert(0, sys.argv[3])
from medflow.auth.principal import Principal
from medflow.bootstrap import build_services
from medflow.config import Settings
from medflow.jobs.model import JobRequest, submit
from medflow.jobs.export import run_export
from medflow.jobs.worker import _start, _load

async def main(url, limit):
    import os
    s = build_services(Settings(database_url=url, data_dir=sys.argv[4], job_batch_size=1000,
                                s3_endpoint=os.environ["MEDFLOW_TEST_S3_ENDPOINT"], s3_bucket_prefix="benchbulk",
                                s3_access_key=os.environ["MEDFLOW_TEST_S3_ACCESS_KEY"],
                                s3_secret_key=os.environ["MEDFLOW_TEST_S3_SECRET_KEY"]))
    await s.objects.ensure_buckets()
    class Nowhere:
        async def publish(self, event): pass
    f = {"time_to": sys.argv[2]}
    who = Principal("%s", "admin", "%s")
    job, _ = await submit(s.db, Nowhere(), s.catalogue, who, JobRequest("export", filter=f, options={"format": "xlsx"}),
                          idempotency_key=None, default_deadline_s=3600, max_ids=10)
    await _start(s.db, job)
    job = await _load(s.db, job["id"])
    t = time.perf_counter()
    await run_export(s, job)
    seconds = time.perf_counter() - t
    job = await _load(s.db, job["id"])
    await s.close()
    print(json.dumps({"seconds": seconds, "rows": job["result"]["rows"], "state": job["state"],
                      "size": job["result"]["size_bytes"],
                      "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))

asyncio.run(main(sys.argv[1], 0))
''' % (ADMIN, INSTITUTION)


def export_run(url: str, rows_visible: int) -> dict:
    """An xlsx export of the first ``rows_visible`` cases (by exam time) in a fresh process."""
    from datetime import datetime, timedelta, timezone
    time_to = (datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=rows_visible + 1)).isoformat()
    out = subprocess.run([sys.executable, "-c", EXPORT_CHILD, url, time_to, str(REPO), str(WORK)], cwd=REPO,
                         capture_output=True, text=True, env={**os.environ, "MEDFLOW_LOG_LEVEL": "WARNING"})
    if out.returncode != 0:
        sys.exit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def _delete_topics(namespace: str) -> None:
    from kafka import KafkaAdminClient
    admin = KafkaAdminClient(bootstrap_servers=os.environ["MEDFLOW_TEST_KAFKA_BOOTSTRAP"])
    try:
        topics = [t for t in admin.list_topics() if t.startswith(namespace + ".")]
        if topics:
            admin.delete_topics(topics, raise_errors=False)
        groups = [g.get("group_id") for g in admin.list_groups() if str(g.get("group_id", "")).startswith(namespace + ".")]
        if groups:
            admin.delete_groups(groups)
    finally:
        admin.close()


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--submits", type=int, default=300)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--settle-s", type=float, default=20.0, help="pause after undoing the baseline's deletes")
    args = parser.parse_args()
    import logging
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("medflow").setLevel(logging.WARNING)
    WORK.mkdir(parents=True, exist_ok=True)
    url = bench_url()
    load_s = build_database(url, args.rows)
    print(f"loaded {args.rows} cases in {load_s:.1f} s", flush=True)
    latencies = asyncio.run(submit_latencies(url, args.submits))
    print(f"submit P99 {p99(latencies):.1f} ms (median {statistics.median(latencies):.1f})", flush=True)
    sync_s, sync_rows = asyncio.run(sync_delete(url, args.batch))
    assert sync_rows == args.rows, sync_rows
    print(f"synchronous delete: {sync_s:.1f} s", flush=True)
    undo_deletes(url)
    time.sleep(args.settle_s)      # let InnoDB purge the undone rows' history before the next measurement
    job_s, one_submit_ms, job_rows = asyncio.run(async_job(url, args.batch))
    assert job_rows == args.rows, job_rows
    print(f"job: {job_s:.1f} s", flush=True)
    undo_deletes(url)
    small = export_run(url, args.rows // 5)
    large = export_run(url, args.rows)
    assert large["rows"] == args.rows and small["rows"] == args.rows // 5, (small, large)
    print(f"export {small['rows']} rows: {small['seconds']:.1f} s, peak {small['peak_mb']:.0f} MB; "
          f"{large['rows']} rows: {large['seconds']:.1f} s, peak {large['peak_mb']:.0f} MB", flush=True)
    load = os.getloadavg()
    figures = {"rows": args.rows, "sync_seconds": round(sync_s, 2), "submit_p99_ms": round(p99(latencies), 2),
               "job_seconds": round(job_s, 2), "export_seconds": round(large["seconds"], 2),
               "export_peak_mb": round(large["peak_mb"], 1), "submit_median_ms": round(statistics.median(latencies), 2),
               "export_small_rows": small["rows"], "export_small_seconds": round(small["seconds"], 2),
               "export_small_peak_mb": round(small["peak_mb"], 1), "batch_size": args.batch}
    met = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    line = (f"bulk delete of {args.rows:,} cases on MariaDB + Kafka (batches of {args.batch}): synchronous in one "
            f"request {sync_s:.1f} s; async submit P99 {p99(latencies):.1f} ms over {len(latencies)} submits "
            f"(median {statistics.median(latencies):.1f} ms; target ≤ 50 ms: {met(p99(latencies) <= 50)}), whole job "
            f"{job_s:.1f} s (target ≤ 10 s: {met(job_s <= 10)}); xlsx export {args.rows:,} rows {large['seconds']:.1f} s, "
            f"peak RSS {large['peak_mb']:.0f} MB vs {small['rows']:,} rows {small['seconds']:.1f} s, "
            f"{small['peak_mb']:.0f} MB (memory flat in row count); load average {load[0]:.1f} at the end "
            f"(2 shared cores, other sessions' tests running)")
    record("bulk", figures, line)
    print(line)


if __name__ == "__main__":
    main()
