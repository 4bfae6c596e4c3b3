"""Analysis workflow end to end on real servers: submit-to-result latency at 1 and 50
concurrent doctors, and duplicate suppression (the same input submitted 20 times at once).

    set -a && . .local/infra/env.sh && set +a
    .venv/bin/python bench/analysis.py [--quick] [--c1 60] [--doctors 50] [--rounds 10] [--cxr 15]
                                       [--extra-relays 2] [--no-record]

The full run takes about 1.5 minutes here, ``--quick`` about 45 s.

The path measured, every part its own process as in the cluster
    doctor (aiohttp, this process) --POST--> ``analyses`` function (functions-framework --asgi)
    --> task row + outbox --> Kafka (``<ns>.medflow.analysis``) --> ``medflow relay`` (plays
    Knative's KafkaSource/Trigger: one consumer group, HTTP delivery) --> ``analysis_worker``
    function (functions-framework) --> Redis lock, claim --> KServe model server (``medflow
    models serve --cpu``, ONNX Runtime, default batching) --> result row + finished event +
    Redis pub/sub --> the doctor's server-sent events stream (``GET /analyses/{id}/events`` on
    the analyses function) delivers ``succeeded``.
    Real MariaDB (a dedicated ``medflow_bench_analysis`` database, rebuilt each run), Redis,
    Kafka (a fresh namespace per run; its topics and groups deleted at the end) and MinIO (a
    bucket prefix per run, emptied at the end). Doctors are real users with real access tokens.
    The analyses function runs with ``MEDFLOW_REDIS_MAX_CONNECTIONS=200`` (``--redis-pool``):
    every open SSE stream holds a pooled Redis connection, so the default 50 is exhausted by 50
    followers and the process then answers 503 to everything that needs Redis.

Latency = from the start of ``POST /analyses`` to the moment the doctor's SSE stream (opened
as soon as the 202 arrived) delivers ``state: succeeded`` (the stream is then read to its end,
as the server closes it); the result is then read once with ``GET /analyses/{id}`` (timed
apart: ``result_read_median_ms_*``). Server-side ``timings`` of each task (queue_ms: created →
worker started the model call; model_call_ms; total_ms: created → result written) as medians.
``late_push_tasks_*``: tasks whose stream saw the result more than 1 s after it was written
(e2e - submit - total_ms), i.e. found by the stream's 5 s heartbeat re-read, not by the push.
Raw per-task figures of the concurrent phases: ``bench/.work/analysis/runs_<phase>.json``.

Phases (urinalysis model: lab panel items inserted straight into the database, every task a
distinct item, so nothing is deduplicated)
    warm-up: 10 tasks, one doctor, not counted.
    c1:  one doctor, ``--c1`` tasks one after another.
    c50: ``--doctors`` doctors at once, each ``--rounds`` tasks one after another (closed loop).
         Throughput = tasks / wall time. From the task rows: ``max_concurrent_runs_c50``, the
         most tasks whose [started_at, finished_at] overlapped (1: the worker was fed one event
         at a time), the median run (claim → result) and, when serial, the median gap between
         one result and the next claim (the relay's and worker's overhead per event). CPU: the
         machine's busy share and each process's (its process tree) during the phase.
    c50_relays3: the same again after ``--extra-relays`` more relay processes joined the
         consumer group (the topic's partitions shared out: at most one event in flight per
         relay), to show what parallel delivery would change on this machine.
    dup: one new item submitted by 20 doctors at once; ``duplicate_model_calls`` = the model
         server's own ``request_predict_seconds_count{model_name="urinalysis"}`` after minus
         before (KServe's Prometheus metric: requests that reached the engine). Also the
         worker's ``medflow_model_calls_total`` and the number of distinct task ids.
    redelivery: one new item submitted once, and its ``requested`` CloudEvent POSTed 20 more
         times at once straight to the worker (at-least-once redelivery; the relay delivers it
         too): ``redelivered_model_calls`` counted the same way.
    cxr: ``--cxr`` chest X-ray studies (generated 256×256 CR DICOM, stored in MinIO through the
         imaging ingestion use case), ``chest_xray_diagnosis`` one after another at c1.

Writes ``bench/results/analysis.json`` and a line in ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import date, timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests"))

from record import record  # noqa: E402
from support_processes import BIN, free_port, function_command, models_command, running  # noqa: E402

from medflow.analysis.tasks import requested_event  # noqa: E402
from medflow.auth.principal import Principal  # noqa: E402
from medflow.auth.tokens import issue_access_token  # noqa: E402
from medflow.bootstrap import build_keys, build_services  # noqa: E402
from medflow.bus.events import to_http  # noqa: E402
from medflow.config import Settings  # noqa: E402
from medflow.db import migrate  # noqa: E402
from medflow.db.engine import sync_url  # noqa: E402
from medflow.db.schema import analysis_tasks, case_items, cases, institutions, patients, persons, users  # noqa: E402
from medflow.ids import new_id, utcnow  # noqa: E402

DATABASE = "medflow_bench_analysis"
INSTITUTION = "01JBENCHANALYSIS000000INST"
WORK = REPO / "bench" / ".work" / "analysis"
URINALYSIS = [("specific_gravity", 1.018, None), ("5803-2", 6.0, None), ("protein", 150.0, "mg/dL"),
              ("glucose", 0.0, "mg/dL"), ("rbc", 2.0, "/hpf"), ("wbc", 3.0, "/hpf"), ("nitrite", 0.0, None),
              ("albumin_creatinine_ratio", 320.0, "mg/g"), ("2160-0", 186.0, "umol/L"), ("bun", 38.0, "mg/dL"),
              ("egfr", 35.0, "mL/min/1.73m2")]
FINISHED = ("succeeded", "failed")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def doctor_id(n: int) -> str:
    return f"01JBENCHAN{n:016d}"


# --- setup -------------------------------------------------------------------------------------

def fresh_database() -> str:
    base = os.environ.get("MEDFLOW_TEST_MYSQL_URL") or sys.exit("source .local/infra/env.sh first (MEDFLOW_TEST_MYSQL_URL)")
    url = make_url(base).set(database=DATABASE).render_as_string(hide_password=False)
    admin = sa.create_engine(sync_url(base))
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{DATABASE}`")
        conn.exec_driver_sql(f"CREATE DATABASE `{DATABASE}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    admin.dispose()
    migrate.upgrade(url)
    return url


def seed(url: str, doctors: int, panels_per_doctor: int) -> dict[int, list[tuple[str, str]]]:
    """An institution, ``doctors`` doctors each with a patient and a case holding
    ``panels_per_doctor`` urinalysis panel items; returns doctor -> [(case_id, item_id)]."""
    engine = sa.create_engine(sync_url(url))
    now = utcnow()
    content = {"panel": "urinalysis", "specimen": "urine", "analytes": [
        {"code": c, "name": c, "value": v, **({"unit": u} if u else {})} for c, v, u in URINALYSIS]}
    items: dict[int, list[tuple[str, str]]] = {}
    with engine.begin() as conn:
        conn.execute(institutions.insert().values(id=INSTITUTION, code="BENCHAN", name="Analysis bench",
                                                  created_at=now, updated_at=now))
        conn.execute(users.insert(), [{"id": doctor_id(n), "institution_id": INSTITUTION, "username": f"doc{n}",
                                       "role": "doctor", "display_name": f"Doctor {n}", "created_at": now,
                                       "updated_at": now} for n in range(doctors)])
        case_rows, item_rows = [], []
        for n in range(doctors):
            pid = f"01JBENCHANP{n:015d}"
            conn.execute(persons.insert().values(id=pid, created_at=now))
            conn.execute(patients.insert().values(id=pid, institution_id=INSTITUTION, person_id=pid, mrn=f"AN-{n}",
                                                  display_name=f"Patient {n}", birth_date=date(1958, 3, 2),
                                                  created_at=now, updated_at=now))
            cid = new_id()
            case_rows.append({"id": cid, "institution_id": INSTITUTION, "patient_id": pid, "exam_type": "lab",
                              "modality": "LAB", "exam_time": now - timedelta(days=1), "doctor_id": doctor_id(n),
                              "title": "Urinalysis", "created_at": now, "updated_at": now})
            items[n] = []
            for _ in range(panels_per_doctor):
                iid = new_id()
                item_rows.append({"id": iid, "case_id": cid, "institution_id": INSTITUTION, "kind": "lab_panel",
                                  "title": "Urinalysis", "content": content, "created_by": doctor_id(n),
                                  "created_at": now, "updated_at": now})
                items[n].append((cid, iid))
        conn.execute(cases.insert(), case_rows)
        conn.execute(case_items.insert(), item_rows)
    engine.dispose()
    return items


def settings(url: str, namespace: str) -> Settings:
    env = os.environ
    return Settings(database_url=url, redis_url=env["MEDFLOW_TEST_REDIS_URL"], kafka_bootstrap=env["MEDFLOW_TEST_KAFKA_BOOTSTRAP"],
                    s3_endpoint=env["MEDFLOW_TEST_S3_ENDPOINT"], s3_access_key=env["MEDFLOW_TEST_S3_ACCESS_KEY"],
                    s3_secret_key=env["MEDFLOW_TEST_S3_SECRET_KEY"], s3_bucket_prefix=namespace,
                    kafka_namespace=namespace, cache_namespace=namespace, data_dir=WORK)


def function_env(url: str, namespace: str, models_url: str) -> dict[str, str]:
    env = os.environ
    return {"MEDFLOW_DATABASE_URL": url, "MEDFLOW_REDIS_URL": env["MEDFLOW_TEST_REDIS_URL"],
            "MEDFLOW_KAFKA_BOOTSTRAP": env["MEDFLOW_TEST_KAFKA_BOOTSTRAP"], "MEDFLOW_S3_ENDPOINT": env["MEDFLOW_TEST_S3_ENDPOINT"],
            "MEDFLOW_S3_ACCESS_KEY": env["MEDFLOW_TEST_S3_ACCESS_KEY"], "MEDFLOW_S3_SECRET_KEY": env["MEDFLOW_TEST_S3_SECRET_KEY"],
            "MEDFLOW_S3_BUCKET_PREFIX": namespace, "MEDFLOW_KAFKA_NAMESPACE": namespace,
            "MEDFLOW_CACHE_NAMESPACE": namespace, "MEDFLOW_DATA_DIR": str(WORK), "MEDFLOW_LOG_LEVEL": "WARNING",
            "MEDFLOW_MODELS_URL": models_url}


def wait_for_line(path: Path, text: str, proc, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in path.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"{path.name}: no {text!r}; see {path}")
        time.sleep(0.2)


async def chest_xray_items(url: str, namespace: str, count: int) -> list[tuple[str, str]]:
    """``count`` generated CR studies stored (MinIO + index) by the ingestion use case, each on
    its own case as an imaging item; [(case_id, item_id)] of doctor 0."""
    from medflow.dicom.generate import Spec, make
    from medflow.imaging.ingest import ingest_file
    from medflow.inference.catalog import model_module
    import numpy as np
    model_module("chest_xray_diagnosis", "demo")          # mounts kserve/ as medflow_kserve
    import medflow_kserve.common.synthetic as syn
    services = build_services(settings(url, namespace))
    out = []
    try:
        await services.objects.ensure_buckets()
        now = utcnow()
        for n in range(count):
            rng = np.random.default_rng(100 + n)
            mrn = f"AN-CXR-{n}"
            data = make(Spec(modality="CR", pixels=syn.chest_xray(rng, syn.cxr_labels(rng), 256), patient_id=mrn,
                             birth_date="19600501"))
            with tempfile.NamedTemporaryFile(suffix=".dcm", delete=False) as f:
                f.write(data)
            try:
                outcome = await ingest_file(services, INSTITUTION, Path(f.name), len(data))
            finally:
                os.unlink(f.name)
            assert outcome.status == "stored", outcome
            async with services.db.transaction() as conn:
                pid = (await conn.execute(sa.select(patients.c.id).where(
                    patients.c.institution_id == INSTITUTION, patients.c.mrn == mrn))).scalar_one()
                cid, iid = new_id(), new_id()
                await conn.execute(cases.insert().values(id=cid, institution_id=INSTITUTION, patient_id=pid,
                                                         exam_type="imaging", modality="CR", exam_time=now,
                                                         doctor_id=doctor_id(0), title="Chest", created_at=now,
                                                         updated_at=now))
                await conn.execute(case_items.insert().values(id=iid, case_id=cid, institution_id=INSTITUTION,
                                                              kind="imaging_study", title="Study",
                                                              content={"study_instance_uid": outcome.study_uid},
                                                              created_by=doctor_id(0), created_at=now, updated_at=now))
            out.append((cid, iid))
    finally:
        await services.close()
    return out


# --- the doctor's side -----------------------------------------------------------------------

class Doctor:
    def __init__(self, session, base: str, token: str) -> None:
        self.session, self.base = session, base
        self.headers = {"authorization": f"Bearer {token}"}

    async def submit(self, case_id: str, item_id: str, model: str, parameters: dict | None = None) -> dict:
        body = {"case_id": case_id, "item_id": item_id, "model": model, **({"parameters": parameters} if parameters else {})}
        async with self.session.post(f"{self.base}/analyses", json=body, headers=self.headers) as response:
            text = await response.text()
            assert response.status == 202, text[:500]
            return json.loads(text)

    async def follow(self, task_id: str) -> tuple[dict, float]:
        """The SSE stream until the task is finished: (its last status event, perf_counter when
        it arrived). The stream is then read to its end (the server closes it after the last
        event), so the server's stream ends as designed rather than by a client disconnect."""
        last, seen = None, 0.0
        async with self.session.get(f"{self.base}/analyses/{task_id}/events", headers=self.headers) as response:
            assert response.status == 200, (await response.text())[:500]
            async for raw in response.content:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("event: error"):
                    raise AssertionError(f"SSE error for {task_id}")
                if line.startswith("data: ") and not seen:
                    last = json.loads(line[6:])
                    if last["state"] in FINISHED:
                        seen = time.perf_counter()
        if not seen:
            raise AssertionError(f"SSE stream of {task_id} ended while {last and last['state']}")
        return last, seen

    async def read(self, task_id: str) -> dict:
        async with self.session.get(f"{self.base}/analyses/{task_id}", headers=self.headers) as response:
            text = await response.text()
            assert response.status == 200, text[:500]
            return json.loads(text)

    async def run(self, case_id: str, item_id: str, model: str = "urinalysis", parameters: dict | None = None) -> dict:
        """One analysis as the doctor's page does it; latencies in ms and the server timings."""
        at = time.time()
        started = time.perf_counter()
        task = await self.submit(case_id, item_id, model, parameters)
        submitted = time.perf_counter()
        done, seen = (task, submitted) if task["state"] in FINISHED else await self.follow(task["id"])
        assert done["state"] == "succeeded", done
        result = await self.read(task["id"])
        read = time.perf_counter()
        assert result["result"] and result["result"]["model"] == model, result
        return {"id": task["id"], "at": at, "e2e_ms": (seen - started) * 1000, "submit_ms": (submitted - started) * 1000,
                "read_ms": (read - seen) * 1000, "timings": done["timings"] or result["timings"]}


def summary(runs: list[dict], suffix: str, prefix: str = "") -> dict[str, float]:
    """``{prefix}e2e_median_ms_{suffix}``, P99, submit median, and the server timings' medians."""
    e2e = [r["e2e_ms"] for r in runs]
    out = {f"{prefix}e2e_median_ms_{suffix}": statistics.median(e2e), f"{prefix}e2e_p99_ms_{suffix}": percentile(e2e, 99),
           f"{prefix}submit_median_ms_{suffix}": statistics.median(r["submit_ms"] for r in runs),
           f"{prefix}result_read_median_ms_{suffix}": statistics.median(r["read_ms"] for r in runs),
           f"{prefix}tasks_{suffix}": len(runs)}
    # Tasks whose SSE stream saw the result more than 1 s after the worker wrote it (the stream's
    # 5 s heartbeat re-read found it, not the pub/sub push): e2e - submit - server total_ms.
    out[f"{prefix}late_push_tasks_{suffix}"] = sum(
        1 for r in runs if r["timings"] and r["e2e_ms"] - r["submit_ms"] - r["timings"]["total_ms"] > 1000)
    for key in ("queue_ms", "model_call_ms", "total_ms"):
        values = [r["timings"][key] for r in runs if r["timings"] and key in r["timings"]]
        if values:
            out[f"{prefix}server_{key.removesuffix('_ms')}_median_ms_{suffix}"] = statistics.median(values)
    return out


async def metric(session, url: str, name: str, labels: dict[str, str]) -> float:
    """A Prometheus sample (0 when absent)."""
    async with session.get(url) as response:
        text = await response.text()
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line[len(name):line.rindex("}") + 1]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def cpu_snapshot(pids: dict[str, int]) -> tuple[float, dict[str, float]]:
    """(machine busy seconds summed over cores, CPU seconds of each named process and this one)."""
    ticks = os.sysconf("SC_CLK_TCK")
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = (sum(fields) - fields[3] - fields[4]) / ticks          # all but idle and iowait
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stats[int(entry.name)] = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                pass
    children: dict[int, list[int]] = {}
    for pid, stat in stats.items():
        children.setdefault(int(stat[1]), []).append(pid)

    def tree_cpu(pid: int) -> float:       # utime + stime of the process and its descendants
        stat = stats.get(pid)
        own = (int(stat[11]) + int(stat[12])) / ticks if stat else 0.0
        return own + sum(tree_cpu(child) for child in children.get(pid, ()))

    out = {"bench client": sum(os.times()[:2])}
    out.update({name: tree_cpu(pid) for name, pid in pids.items()})
    return busy, out


def worker_figures(url: str, task_ids: list[str], suffix: str) -> dict[str, float]:
    """From the task rows: the most tasks whose [started_at, finished_at] overlapped (the worker's
    real parallelism), the median run (claim → result written) and, when runs are serial, the
    median gap between one result and the next claim (relay + worker overhead per event)."""
    engine = sa.create_engine(sync_url(url))
    with engine.connect() as conn:
        rows = conn.execute(sa.select(analysis_tasks.c.started_at, analysis_tasks.c.finished_at)
                            .where(analysis_tasks.c.id.in_(task_ids))).all()
    engine.dispose()
    edges = sorted([(s, 1) for s, _ in rows] + [(f, -1) for _, f in rows], key=lambda e: (e[0], e[1]))
    best = now = 0
    for _, step in edges:
        now += step
        best = max(best, now)
    runs = sorted(rows)
    gaps = [(b.started_at - a.finished_at).total_seconds() * 1000 for a, b in zip(runs, runs[1:])]
    out = {f"max_concurrent_runs_{suffix}": best,
           f"worker_run_median_ms_{suffix}": statistics.median((f - s).total_seconds() * 1000 for s, f in rows)}
    if best == 1:
        out[f"worker_gap_median_ms_{suffix}"] = statistics.median(gaps)
    return out


async def measure(args, base: str, worker_url: str, models_url: str, url: str, items: dict[int, list[tuple[str, str]]],
                  cxr: list[tuple[str, str]], add_relays, pids: dict[str, int]) -> dict[str, float]:
    import aiohttp
    keys = build_keys(Settings(data_dir=WORK))
    tokens = [issue_access_token(keys, Principal(doctor_id(n), "doctor", INSTITUTION), issuer="medflow", now=utcnow(),
                                 ttl_s=3600).token for n in range(args.doctors)]
    figures: dict[str, float] = {}
    connector = aiohttp.TCPConnector(limit=4 * args.doctors + 20)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as session:
        doctors = [Doctor(session, base, t) for t in tokens]
        queues = {n: list(items[n]) for n in items}

        # warm-up
        for _ in range(10):
            await doctors[0].run(*queues[0].pop())
        print("warm-up done", flush=True)

        # c1
        started = time.perf_counter()
        c1 = [await doctors[0].run(*queues[0].pop()) for _ in range(args.c1)]
        c1_wall = time.perf_counter() - started
        figures.update(summary(c1, "c1"))
        figures["throughput_tasks_per_s_c1"] = len(c1) / c1_wall
        print(f"c1: {len(c1)} tasks, median {figures['e2e_median_ms_c1']:.1f} ms, P99 {figures['e2e_p99_ms_c1']:.1f} ms, "
              f"server total median {figures.get('server_total_median_ms_c1', 0):.1f} ms", flush=True)

        # c50: every doctor at once, each a closed loop of --rounds tasks
        async def doctor_loop(n: int) -> list[dict]:
            return [await doctors[n].run(*queues[n].pop()) for _ in range(args.rounds)]

        async def concurrent_phase(suffix: str) -> None:
            busy_before, cpu_before = cpu_snapshot(pids)
            started = time.perf_counter()
            runs = [r for rs in await asyncio.gather(*(doctor_loop(n) for n in range(args.doctors))) for r in rs]
            wall = time.perf_counter() - started
            busy_after, cpu_after = cpu_snapshot(pids)
            cores = len(os.sched_getaffinity(0))
            figures[f"machine_cpu_busy_pct_{suffix}"] = 100 * (busy_after - busy_before) / wall / cores
            shares = {name: 100 * (cpu_after[name] - cpu_before.get(name, 0)) / wall for name in cpu_after}
            figures.update({f"cpu_pct_{name.replace(' ', '_')}_{suffix}": v for name, v in shares.items()})
            print(f"{suffix}: machine CPU busy {figures[f'machine_cpu_busy_pct_{suffix}']:.0f}% of {cores} cores; "
                  "per process (% of one core): " + ", ".join(f"{k} {v:.0f}" for k, v in
                                                               sorted(shares.items(), key=lambda kv: -kv[1])), flush=True)
            (WORK / f"runs_{suffix}.json").write_text(json.dumps(runs))      # raw, for a closer look
            figures.update(summary(runs, suffix))
            figures[f"throughput_tasks_per_s_{suffix}"] = len(runs) / wall
            figures.update(worker_figures(url, [r["id"] for r in runs], suffix))
            print(f"{suffix}: {len(runs)} tasks in {wall:.1f} s ({len(runs) / wall:.1f}/s), median "
                  f"{figures[f'e2e_median_ms_{suffix}']:.0f} ms, P99 {figures[f'e2e_p99_ms_{suffix}']:.0f} ms, submit median "
                  f"{figures[f'submit_median_ms_{suffix}']:.0f} ms, server queue median "
                  f"{figures.get(f'server_queue_median_ms_{suffix}', 0):.0f} ms, model call median "
                  f"{figures.get(f'server_model_call_median_ms_{suffix}', 0):.1f} ms, worker run median "
                  f"{figures[f'worker_run_median_ms_{suffix}']:.1f} ms, "
                  + (f"gap between runs median {figures[f'worker_gap_median_ms_{suffix}']:.1f} ms, "
                     if f"worker_gap_median_ms_{suffix}" in figures else "")
                  + f"result read median {figures[f'result_read_median_ms_{suffix}']:.0f} ms, at most "
                  f"{figures[f'max_concurrent_runs_{suffix}']} task(s) running at once, "
                  f"{figures[f'late_push_tasks_{suffix}']} task(s) seen > 1 s after their result was written",
                  flush=True)

        c = f"c{args.doctors}"
        await concurrent_phase(c)
        if args.extra_relays:
            add_relays(args.extra_relays)
            await asyncio.sleep(2.0)
            await concurrent_phase(f"{c}_relays{1 + args.extra_relays}")

        # duplicate suppression: 20 doctors submit the same new item at once
        server = lambda: metric(session, f"{models_url}/metrics", "request_predict_seconds_count",  # noqa: E731
                                {"model_name": "urinalysis"})
        worker = lambda: metric(session, f"{worker_url}/metrics", "medflow_model_calls_total",  # noqa: E731
                                {"model": "urinalysis"})
        await asyncio.sleep(1.0)
        before_server, before_worker = await server(), await worker()
        case_id, item_id = queues[1].pop()
        answers = await asyncio.gather(*(doctors[n % args.doctors].submit(case_id, item_id, "urinalysis")
                                         for n in range(args.duplicates)))
        ids = {a["id"] for a in answers}
        done, _ = await doctors[0].follow(answers[0]["id"])
        assert done["state"] == "succeeded", done
        await asyncio.sleep(2.0)
        figures["duplicate_model_calls"] = await server() - before_server
        figures["duplicate_worker_model_calls"] = await worker() - before_worker
        figures["duplicate_task_ids"] = len(ids)
        print(f"duplicates: {args.duplicates} submissions -> {len(ids)} task(s), "
              f"{figures['duplicate_model_calls']:.0f} model-server call(s) "
              f"({figures['duplicate_worker_model_calls']:.0f} counted by the worker)", flush=True)

        # redelivery: the same requested event delivered 20 more times, straight to the worker
        before_server, before_worker = await server(), await worker()
        case_id, item_id = queues[2].pop()
        task = await doctors[2].submit(case_id, item_id, "urinalysis")
        headers, body = to_http(requested_event({**task, "institution_id": INSTITUTION, "attempts": 0}))

        async def redeliver() -> int:
            async with session.post(worker_url + "/", data=body, headers=headers) as response:
                return response.status
        statuses = await asyncio.gather(*(redeliver() for _ in range(args.duplicates)))
        done, _ = await doctors[2].follow(task["id"])
        assert done["state"] == "succeeded", done
        await asyncio.sleep(2.0)
        figures["redelivered_model_calls"] = await server() - before_server
        figures["redelivered_worker_model_calls"] = await worker() - before_worker
        codes = {str(s): statuses.count(s) for s in sorted(set(statuses))}
        print(f"redelivery: 1 relay delivery + {args.duplicates} direct ones (HTTP {codes}) -> "
              f"{figures['redelivered_model_calls']:.0f} model-server call(s)", flush=True)

        # chest X-ray diagnosis at c1
        if cxr:
            await doctors[0].run(*cxr.pop(), model="chest_xray_diagnosis", parameters={"indication": "cough, fever"})
            runs = [await doctors[0].run(*cxr.pop(), model="chest_xray_diagnosis", parameters={"indication": "cough, fever"})
                    for _ in range(len(cxr))]
            figures.update(summary(runs, "c1", prefix="cxr_"))
            print(f"chest_xray_diagnosis c1: {len(runs)} tasks, median {figures['cxr_e2e_median_ms_c1']:.0f} ms, "
                  f"P99 {figures['cxr_e2e_p99_ms_c1']:.0f} ms, model call median "
                  f"{figures.get('cxr_server_model_call_median_ms_c1', 0):.0f} ms", flush=True)
    return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in figures.items()}


# --- cleanup -----------------------------------------------------------------------------------

def delete_topics(namespace: str) -> None:
    """The run's topics and consumer groups (as tests/conftest.py ``delete_topics``)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError
    prefix = namespace + "."
    admin = KafkaAdminClient(bootstrap_servers=os.environ["MEDFLOW_TEST_KAFKA_BOOTSTRAP"], client_id="medflow-bench-cleanup")
    try:
        topics = [t for t in admin.list_topics() if t.startswith(prefix)]
        if topics:
            admin.delete_topics(topics, raise_errors=False)
        groups = [g.get("group_id") for g in admin.list_groups()]
        mine = [g for g in groups if isinstance(g, str) and g.startswith(prefix)]
        if mine:
            admin.delete_groups(mine)
    except KafkaError as exc:
        print(f"topic cleanup failed: {type(exc).__name__}", file=sys.stderr)
    finally:
        admin.close()


def topic_partitions(topic: str) -> int:
    from kafka import KafkaConsumer
    consumer = KafkaConsumer(bootstrap_servers=os.environ["MEDFLOW_TEST_KAFKA_BOOTSTRAP"], group_id=None)
    try:
        return len(consumer.partitions_for_topic(topic) or ())
    finally:
        consumer.close()


def empty_buckets(prefix: str) -> None:
    import boto3
    s3 = boto3.resource("s3", endpoint_url=os.environ["MEDFLOW_TEST_S3_ENDPOINT"],
                        aws_access_key_id=os.environ["MEDFLOW_TEST_S3_ACCESS_KEY"],
                        aws_secret_access_key=os.environ["MEDFLOW_TEST_S3_SECRET_KEY"], region_name="us-east-1")
    for bucket in s3.buckets.all():
        if bucket.name.startswith(prefix + "-"):
            bucket.objects.all().delete()
            bucket.delete()


# --- main --------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small run (about 45 s): defaults --c1 15 --rounds 2 --cxr 4")
    parser.add_argument("--c1", type=int, default=None, help="tasks of the one-doctor phase (60)")
    parser.add_argument("--doctors", type=int, default=50, help="concurrent doctors of the second phase")
    parser.add_argument("--rounds", type=int, default=None, help="tasks per doctor in the concurrent phase (10)")
    parser.add_argument("--duplicates", type=int, default=20)
    parser.add_argument("--cxr", type=int, default=None, help="chest X-ray tasks at c1 (15; 0: skip)")
    parser.add_argument("--extra-relays", type=int, default=2,
                        help="then the concurrent phase again with this many more relay processes in the group (0: skip)")
    parser.add_argument("--redis-pool", type=int, default=200,
                        help="MEDFLOW_REDIS_MAX_CONNECTIONS of the analyses function (default 50 is exhausted by 50 SSE streams)")
    parser.add_argument("--no-record", action="store_true", help="print the figures only")
    args = parser.parse_args()
    for name, full, quick in (("c1", 60, 15), ("rounds", 10, 2), ("cxr", 15, 4)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    WORK.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    url = fresh_database()
    namespace = "benchan" + secrets.token_hex(3)
    items = seed(url, max(args.doctors, 3), 10 + args.c1 + 2 * args.rounds + 1)
    cxr = asyncio.run(chest_xray_items(url, namespace, args.cxr + 1)) if args.cxr else []
    print(f"database {DATABASE}, Kafka namespace {namespace}: {sum(map(len, items.values()))} panel items, "
          f"{len(cxr)} chest X-ray studies", flush=True)
    models_port, worker_port, analyses_port = free_port(), free_port(), free_port()
    models_url = f"http://127.0.0.1:{models_port}"
    worker_url, base = f"http://127.0.0.1:{worker_port}", f"http://127.0.0.1:{analyses_port}"
    env = function_env(url, namespace, models_url)
    relay = [str(BIN / "medflow"), "relay", "--bootstrap", os.environ["MEDFLOW_TEST_KAFKA_BOOTSTRAP"],
             "--namespace", namespace, "--route", f"analysis_worker={worker_url}/=org.medflow.analysis.requested.v1"]
    models = ["urinalysis"] + (["chest_xray_diagnosis"] if args.cxr else [])
    try:
        with ExitStack() as stack:
            started = time.perf_counter()
            pids: dict[str, int] = {}
            pids["model server"] = stack.enter_context(running(models_command(models_port, "--models", ",".join(models)), {}, WORK / "models.log",
                                        ready_url=f"{models_url}/v2/health/ready", timeout_s=180)).pid
            pids["analysis_worker"] = stack.enter_context(running(
                function_command("analysis_worker", worker_port), env, WORK / "worker.log",
                ready_url=f"{worker_url}/healthz", timeout_s=120)).pid
            relay_proc = stack.enter_context(running(relay, env, WORK / "relay.log"))
            pids["relay"] = relay_proc.pid
            wait_for_line(WORK / "relay.log", "relay started", relay_proc)
            # Each open SSE stream holds one pooled Redis connection for its subscription (medflow/cache/redis.py):
            # with the default pool (MEDFLOW_REDIS_MAX_CONNECTIONS=50), 50 followers starve every other Redis call
            # of the process (token revocation checks, ...) and it answers 503 after the 5 s pool wait.
            analyses_env = {**env, "MEDFLOW_REDIS_MAX_CONNECTIONS": str(args.redis_pool)}
            pids["analyses"] = stack.enter_context(running(
                function_command("analyses", analyses_port), analyses_env, WORK / "analyses.log",
                ready_url=f"{base}/healthz", timeout_s=120)).pid
            print(f"model server, analysis_worker, relay and analyses up in {time.perf_counter() - started:.0f} s",
                  flush=True)
            def add_relays(count: int) -> None:
                """More relay processes in the same consumer group: the group's partitions are shared out."""
                for n in range(count):
                    log = WORK / f"relay{n + 2}.log"
                    proc = stack.enter_context(running(relay, env, log))
                    wait_for_line(log, "relay started", proc)
                    pids[f"relay {n + 2}"] = proc.pid

            figures = asyncio.run(measure(args, base, worker_url, models_url, url, items, cxr, add_relays, pids))
            figures["analysis_topic_partitions"] = topic_partitions(f"{namespace}.medflow.analysis")
    finally:
        delete_topics(namespace)
        empty_buckets(namespace)      # the functions create the namespace's buckets at start
    load_after = os.getloadavg()
    figures["load_average_before"], figures["load_average_after"] = round(load_before[0], 2), round(load_after[0], 2)
    c, f = f"c{args.doctors}", figures
    r = f"{c}_relays{1 + args.extra_relays}"
    serial = (f"the relay delivers one event at a time per consumer group: run {f[f'worker_run_median_ms_{c}']:.0f} ms + "
              f"{f[f'worker_gap_median_ms_{c}']:.0f} ms between runs per event" if f"worker_gap_median_ms_{c}" in f else
              f"worker run median {f[f'worker_run_median_ms_{c}']:.0f} ms")
    line = (f"analysis workflow end to end (analyses function → Kafka → relay → analysis_worker → KServe model server, "
            f"ONNX Runtime CPU → result → SSE), each its own process, real MariaDB + Redis + Kafka + MinIO, 2 shared cores "
            f"(load average {load_before[0]:.1f} before, {load_after[0]:.1f} after); urinalysis on distinct lab panels: "
            f"1 doctor median {f['e2e_median_ms_c1']:.0f} ms / P99 {f['e2e_p99_ms_c1']:.0f} ms ({f['tasks_c1']} tasks; "
            f"server total {f.get('server_total_median_ms_c1', 0):.0f} ms of which model call "
            f"{f.get('server_model_call_median_ms_c1', 0):.1f} ms); {args.doctors} doctors median "
            f"{f[f'e2e_median_ms_{c}']:.0f} ms / P99 {f[f'e2e_p99_ms_{c}']:.0f} ms ({f[f'tasks_{c}']} tasks, "
            f"{f[f'throughput_tasks_per_s_{c}']:.1f} tasks/s, server queue median {f.get(f'server_queue_median_ms_{c}', 0):.0f} ms, "
            f"at most {f[f'max_concurrent_runs_{c}']} task(s) running at once: {serial}; machine CPU "
            f"{f[f'machine_cpu_busy_pct_{c}']:.0f}% busy; {f[f'late_push_tasks_{c}']} task(s) seen only at the SSE "
            f"stream's 5 s heartbeat)"
            + (f"; with {1 + args.extra_relays} relays in the group (one event in flight per partition) median "
               f"{f[f'e2e_median_ms_{r}']:.0f} ms / P99 {f[f'e2e_p99_ms_{r}']:.0f} ms, {f[f'throughput_tasks_per_s_{r}']:.1f} "
               f"tasks/s, CPU {f[f'machine_cpu_busy_pct_{r}']:.0f}% busy, {f[f'late_push_tasks_{r}']} task(s) seen only "
               f"at the heartbeat" if f"e2e_median_ms_{r}" in f else "")
            + f"; the same input submitted {args.duplicates}× at once: {f['duplicate_task_ids']} task, "
            f"{f['duplicate_model_calls']:.0f} model call(s) at the model server (target 1: "
            f"{'met' if f['duplicate_model_calls'] == 1 else 'NOT met'}); its event delivered {args.duplicates}× more: "
            f"{f['redelivered_model_calls']:.0f} call(s)"
            + (f"; chest_xray_diagnosis, 1 doctor: median {f['cxr_e2e_median_ms_c1']:.0f} ms / P99 "
               f"{f['cxr_e2e_p99_ms_c1']:.0f} ms" if "cxr_e2e_median_ms_c1" in f else ""))
    if args.no_record:
        print(json.dumps(figures, indent=2))
    else:
        record("analysis", figures, line)
    print(line)


if __name__ == "__main__":
    main()
