"""Read API with and without cache-aside at 200 concurrent connections, in one run (issue 4).

    . .local/infra/env.sh && .venv/bin/python bench/cache_read.py [--duration 30] [--workers 2]

What it measures: a function started alone as its Knative Service runs it
(``functions-framework --asgi``: gunicorn with ``--workers`` uvicorn workers, uvloop and
httptools when installed), on the real MariaDB and Redis of ``infra/local``
(``MEDFLOW_TEST_MYSQL_URL``, ``MEDFLOW_TEST_REDIS_URL``), loaded by ``wrk`` (Debian
package) with 200 connections for ``--duration`` seconds after a ``--warmup``. Two
read-mostly workloads, each measured with cache-aside on and then, on a restarted server
with ``MEDFLOW_CACHE_ASIDE=off``, with every read going to SQL:

- ``announcements`` (the recorded figures): doctors' reads, each request carrying the real
  Ed25519 access token of one of 200 doctors at random (so token checks and revocation
  look-ups are spread as with 200 users): 80 % the first page of the announcement list,
  10 % pages 2–5, 10 % one announcement by id among the ~390 meant for doctors;
- ``departments`` (recorded as ``departments_*``): the public department list of the
  ``directory`` function, 80 % one institution, 20 % two others.

Hit rate comes from the cache-aside's own counters (``medflow_cache_*`` on ``/metrics``,
summed over the workers through prometheus_client's multiprocess files), over the measured
window only.

Data: a dedicated database ``medflow_bench_cache`` (dropped and recreated, migrated with
``medflow.db.migrate``): three institutions, 14 departments, 300 doctors, 3,000 patients
and 1,400 announcements (600 in the measured institution, a third per audience, 2 %
withdrawn), a year of publication times.

Records ``bench/results/cache.json`` (``concurrency``, ``cached_qps``, ``uncached_qps``,
``cached_p99_ms``, ``uncached_p99_ms``, ``hit_rate``, plus medians, the ratio and the
``departments_*`` figures) and a line in ``bench/RESULTS.md`` unless ``--no-record``.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from medflow.auth.keys import load_or_create  # noqa: E402
from medflow.auth.principal import Principal  # noqa: E402
from medflow.auth.tokens import issue_access_token  # noqa: E402
from medflow.db import migrate  # noqa: E402
from medflow.db.engine import sync_url  # noqa: E402
from medflow.db.schema import announcements, departments, institutions, users  # noqa: E402
from medflow.ids import new_id  # noqa: E402
from record import record  # noqa: E402

DATABASE = "medflow_bench_cache"
LOGS = REPO / "bench" / ".work" / "cache_read"  # the servers' logs of the last run
PAGE = 20
BIN = Path(sys.executable).parent


# --- data -----------------------------------------------------------------------------------

def bench_database_url() -> str:
    base = make_url(os.environ["MEDFLOW_TEST_MYSQL_URL"])
    engine = sa.create_engine(sync_url(base.render_as_string(hide_password=False)))
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{DATABASE}`"))
        conn.execute(sa.text(f"CREATE DATABASE `{DATABASE}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    engine.dispose()
    return base.set(database=DATABASE).render_as_string(hide_password=False)


@dataclass
class Seeded:
    institution_id: str
    doctor_ids: list[str]        # the measured institution's doctors
    announcement_ids: list[str]  # live and meant for doctors
    institution_ids: list[str]   # the measured one first


def seed(url: str, rng: random.Random) -> Seeded:
    """Three institutions; the first gets most of the data and is the one measured."""
    engine = sa.create_engine(sync_url(url))
    now = datetime.now(timezone.utc)
    measured: Seeded | None = None
    institution_ids = []
    with engine.begin() as conn:
        for code, doctors, patients, notices in (("MFGH", 240, 2400, 600), ("RRH", 50, 500, 500), ("HXCL", 10, 100, 300)):
            institution_id = new_id()
            institution_ids.append(institution_id)
            conn.execute(institutions.insert().values(id=institution_id, code=code, name=f"Hospital {code}",
                                                      created_at=now, updated_at=now))
            dept_ids = [new_id() for _ in range(8 if code == "MFGH" else 3)]
            conn.execute(departments.insert(), [dict(id=d, institution_id=institution_id, code=f"D{i}", name=f"Dept {i}",
                                                     created_at=now, updated_at=now) for i, d in enumerate(dept_ids)])
            people = [dict(id=new_id(), institution_id=institution_id, department_id=rng.choice(dept_ids),
                           username=f"dr{i}", role="doctor", status="active", display_name=f"Dr. {i}",
                           profile={"specialty": "internal medicine", "languages": ["en", "zh"]}, version=1,
                           created_at=now, updated_at=now) for i in range(doctors)]
            people += [dict(id=new_id(), institution_id=institution_id, department_id=None, username=f"p{i}",
                            role="patient", status="active", display_name=f"Patient {i}", profile=None, version=1,
                            created_at=now, updated_at=now) for i in range(patients)]
            admin_id = new_id()
            people.append(dict(id=admin_id, institution_id=institution_id, department_id=None, username="admin",
                               role="admin", status="active", display_name="Admin", profile=None, version=1,
                               created_at=now, updated_at=now))
            conn.execute(users.insert(), people)
            rows = [dict(id=new_id(), institution_id=institution_id, title=f"Notice {i}: clinic schedule update",
                         body=" ".join(["The outpatient clinic schedule changes next week; see the ward board."] * 6),
                         audience=("all", "doctors", "patients")[i % 3], author_id=admin_id,
                         published_at=now - timedelta(minutes=rng.randint(1, 525_600)), version=1,
                         deleted_at=now if i % 50 == 0 else None) for i in range(notices)]
            conn.execute(announcements.insert(), rows)
            if measured is None:
                visible = [r["id"] for r in rows if r["deleted_at"] is None and r["audience"] != "patients"]
                measured = Seeded(institution_id, [p["id"] for p in people if p["role"] == "doctor"], visible,
                                  institution_ids)
    engine.dispose()
    assert measured is not None
    return measured


# --- the load -------------------------------------------------------------------------------

def page_cursors(base_url: str, headers: dict[str, str], pages: int) -> list[str]:
    """The cursors of pages 2..pages, read once through the API (opaque to the bench)."""
    cursors, cursor = [], None
    for _ in range(pages - 1):
        params = {"limit": PAGE, **({"cursor": cursor} if cursor else {})}
        cursor = httpx.get(f"{base_url}/announcements", headers=headers, params=params, timeout=10).json()["next_cursor"]
        cursors.append(cursor)
    return cursors


def announcements_script(path: Path, tokens: list[str], cursors: list[str], announcement_ids: list[str]) -> None:
    """Doctors' reads, each request with one of ``tokens`` (a doctor each) at random: 80 % first
    page, 10 % pages 2-5, 10 % one announcement by id."""
    later = [f"/announcements?limit={PAGE}&cursor={c}" for c in cursors]
    ones = [f"/announcements/{i}" for i in announcement_ids]
    path.write_text("\n".join([
        f'local first = "/announcements?limit={PAGE}"',
        "local later = {" + ",".join(f'"{p}"' for p in later) + "}",
        "local ones = {" + ",".join(f'"{p}"' for p in ones) + "}",
        "local tokens = {" + ",".join(f'"Bearer {t}"' for t in tokens) + "}",
        "function init(args) math.randomseed(os.time() + math.floor(os.clock() * 1e6)) end",
        "function request()",
        "  local r = math.random(100)",
        "  local path",
        "  if r <= 80 then path = first elseif r <= 90 then path = later[math.random(#later)]",
        "  else path = ones[math.random(#ones)] end",
        '  return wrk.format("GET", path, {["Authorization"] = tokens[math.random(#tokens)]})',
        "end"]) + "\n")


def departments_script(path: Path, institution_ids: list[str]) -> None:
    """Anyone's dictionary reads (public, before sign-in): 80 % the first institution's
    department list, 20 % the others'."""
    paths = [f"/institutions/{institution_ids[0]}/departments"] * 8 + \
            [f"/institutions/{i}/departments" for i in institution_ids[1:]]
    path.write_text("\n".join([
        "local paths = {" + ",".join(f'"{p}"' for p in paths) + "}",
        "function init(args) math.randomseed(os.time() + math.floor(os.clock() * 1e6)) end",
        'function request() return wrk.format("GET", paths[math.random(#paths)]) end']) + "\n")


@dataclass
class LoadResult:
    qps: float
    median_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(base_url: str, script: Path, connections: int, duration_s: int, threads: int) -> LoadResult:
    done = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration_s}s", "--latency", "--timeout", "10s",
                          "-s", str(script), base_url], check=True, capture_output=True, text=True)
    out = done.stdout
    if "Requests/sec" not in out or "99%" not in out:
        raise RuntimeError(f"wrk said:\n{out}\n{done.stderr}")
    latency = dict(re.findall(r"^ +(50|99)% +(\S+)", out, re.M))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return LoadResult(qps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
                      median_ms=_ms(latency["50"]), p99_ms=_ms(latency["99"]),
                      requests=int(re.search(r"(\d+) requests in", out).group(1)),
                      non_2xx=int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0,
                      socket_errors=sum(map(int, errors.groups())) if errors else 0)


# --- the server -----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One function alone under functions-framework, as its Knative Service runs it."""

    def __init__(self, function: str, env: dict[str, str], workers: int, log_path: Path) -> None:
        self.function = function
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("MEDFLOW_") or k.startswith("MEDFLOW_TEST_")},
                    **env, "WORKERS": str(workers)}
        self.log_path = log_path

    def __enter__(self) -> "Server":
        metrics_dir = Path(self.env["PROMETHEUS_MULTIPROC_DIR"])
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([str(BIN / "functions-framework"), "--asgi", "--target", self.function,
                                      "--source", str(REPO / "functions" / self.function / "main.py"),
                                      "--host", "127.0.0.1", "--port", str(self.port)],
                                     cwd=REPO, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.3)
        self.__exit__()
        raise RuntimeError(f"server did not start:\n{self.log_path.read_text()[-3000:]}")

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()

    def cache_counters(self, kind: str) -> dict[str, float]:
        """Hits, misses and loads of one cache kind, summed over every worker."""
        text = httpx.get(f"{self.base_url}/metrics", timeout=10).text
        found = {}
        for name in ("hits", "misses", "loads", "uncached"):
            match = re.search(rf'^medflow_cache_{name}_total{{kind="{kind}"}} ([\d.e+]+)$', text, re.M)
            found[name] = float(match.group(1)) if match else 0.0
        return found


# --- the run --------------------------------------------------------------------------------

@dataclass
class Workload:
    name: str
    function: str     # the function serving it
    kind: str         # its cache kind
    script: Path      # wrk's Lua script


@dataclass
class Measured:
    cached: LoadResult
    uncached: LoadResult
    hit_rate: float

    @property
    def ratio(self) -> float:
        return self.cached.qps / self.uncached.qps if self.uncached.qps else float("inf")

    @property
    def met(self) -> bool:
        return self.cached.qps >= 3300 and self.ratio >= 8 and self.hit_rate >= 0.95


def measure_once(label: str, workload: Workload, env: dict[str, str], args: argparse.Namespace,
                 work: Path) -> tuple[LoadResult, dict[str, float]]:
    LOGS.mkdir(parents=True, exist_ok=True)
    with Server(workload.function, env, args.workers, LOGS / f"{workload.name}-{label}.log") as server:
        run_wrk(server.base_url, workload.script, args.connections, args.warmup, args.threads)  # warm caches and pools
        before = server.cache_counters(workload.kind)
        result = run_wrk(server.base_url, workload.script, args.connections, args.duration, args.threads)
        after = server.cache_counters(workload.kind)
    counters = {k: after[k] - before[k] for k in after}
    print(f"{workload.name:>13} {label:>8}: {result.qps:7.0f} req/s  median {result.median_ms:7.2f} ms  "
          f"p99 {result.p99_ms:7.2f} ms  requests {result.requests}  non-2xx {result.non_2xx}  "
          f"socket errors {result.socket_errors}  cache {counters}", flush=True)
    return result, counters


def measure(workload: Workload, env: dict[str, str], args: argparse.Namespace, work: Path) -> Measured:
    """The same load on the same server, cache-aside on, then off (every read from SQL)."""
    cached, counters = measure_once("cached", workload, env, args, work)
    uncached, _ = measure_once("uncached", workload, {**env, "MEDFLOW_CACHE_ASIDE": "off"}, args, work)
    looked_up = counters["hits"] + counters["misses"]
    return Measured(cached, uncached, counters["hits"] / looked_up if looked_up else 0.0)


def summary(name: str, m: Measured) -> str:
    return (f"{name}: cached {m.cached.qps:,.0f} req/s (median {m.cached.median_ms:.1f} ms, P99 {m.cached.p99_ms:.1f} ms, "
            f"hit rate {m.hit_rate:.1%}) vs uncached {m.uncached.qps:,.0f} req/s (median {m.uncached.median_ms:.1f} ms, "
            f"P99 {m.uncached.p99_ms:.1f} ms) = {m.ratio:.1f}x")


def figures(m: Measured, prefix: str = "") -> dict[str, float]:
    return {f"{prefix}cached_qps": round(m.cached.qps), f"{prefix}uncached_qps": round(m.uncached.qps),
            f"{prefix}cached_p99_ms": round(m.cached.p99_ms, 2), f"{prefix}uncached_p99_ms": round(m.uncached.p99_ms, 2),
            f"{prefix}cached_median_ms": round(m.cached.median_ms, 2),
            f"{prefix}uncached_median_ms": round(m.uncached.median_ms, 2),
            f"{prefix}hit_rate": round(m.hit_rate, 4), f"{prefix}ratio": round(m.ratio, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=30, help="seconds of each measured load")
    parser.add_argument("--warmup", type=int, default=10, help="seconds of load before each measurement")
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=2,
                        help="uvicorn workers of the function (WORKERS): one per core")
    parser.add_argument("--log-level", default="INFO", help="MEDFLOW_LOG_LEVEL of the server (INFO: a line per request)")
    parser.add_argument("--only", choices=("announcements", "departments"), help="measure one workload only")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk is missing: apt-get install -y wrk", file=sys.stderr)
        return 2
    url = bench_database_url()
    migrate.upgrade(url)
    seeded = seed(url, random.Random(4))

    with tempfile.TemporaryDirectory(prefix="medflow-bench-cache-") as tmp:
        work = Path(tmp)
        keys = load_or_create(work / "jwt-keys.json")
        tokens = [issue_access_token(keys, Principal(doctor_id, "doctor", seeded.institution_id), issuer="medflow",
                                     now=datetime.now(timezone.utc), ttl_s=3600).token
                  for doctor_id in seeded.doctor_ids[:args.connections]]
        env = {"MEDFLOW_DATABASE_URL": url, "MEDFLOW_REDIS_URL": os.environ["MEDFLOW_TEST_REDIS_URL"],
               "MEDFLOW_JWT_KEYS_FILE": str(work / "jwt-keys.json"), "MEDFLOW_DATA_DIR": str(work / "data"),
               "MEDFLOW_LOG_LEVEL": args.log_level, "MEDFLOW_DATABASE_POOL_SIZE": "20",
               "PROMETHEUS_MULTIPROC_DIR": str(work / "metrics")}
        workloads = []
        if args.only in (None, "announcements"):
            with Server("announcements", env, 1, work / "cursors.log") as server:
                cursors = page_cursors(server.base_url, {"authorization": f"Bearer {tokens[0]}"}, 5)
            announcements_script(work / "announcements.lua", tokens, cursors, seeded.announcement_ids)
            workloads.append(Workload("announcements", "announcements", "announcements", work / "announcements.lua"))
        if args.only in (None, "departments"):
            departments_script(work / "departments.lua", seeded.institution_ids)
            workloads.append(Workload("departments", "directory", "dictionaries", work / "departments.lua"))
        results = {w.name: measure(w, env, args, work) for w in workloads}

    for name, m in results.items():
        print(f"{summary(name, m)}; targets {'met' if m.met else 'NOT met'}")
    if not args.no_record:
        primary_name = "announcements" if "announcements" in results else "departments"
        primary = results[primary_name]
        recorded = {"concurrency": args.connections, **figures(primary), "workers": args.workers,
                    "duration_s": args.duration, "load_average": round(os.getloadavg()[0], 2)}
        if primary_name == "announcements" and "departments" in results:
            recorded.update(figures(results["departments"], "departments_"))
        lines = "; ".join(f"{summary(n, m)} ({'met' if m.met else 'NOT met'})" for n, m in results.items())
        lines += f"; machine load average {os.getloadavg()[0]:.1f} at the end"
        record("cache", recorded, f"read API at {args.connections} connections, {args.duration} s each, {args.workers} "
                                  f"worker(s), real MariaDB + Redis, target ≥ 3,300 req/s, ≥ 8x, hit rate ≥ 95 %: {lines}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
