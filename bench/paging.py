"""Deep paging on MariaDB: a page deep in 12,000,000 cases, by keyset and by OFFSET.

    .venv/bin/python bench/paging.py [--rows 12000000] [--no-reuse] [--load-budget-min 25]

What it does
    1. Loads the cases into a dedicated database, ``medflow_bench_paging`` on the test
       MariaDB (``MEDFLOW_TEST_MYSQL_URL``, from ``.local/infra/env.sh``), migrated with
       ``medflow.db.migrate``: every index of the real schema is there while loading. Rows
       are generated inside the server (``INSERT … SELECT`` from MariaDB's SEQUENCE engine,
       250,000 rows a statement, foreign-key and unique checks off for the session; the
       generated rows reference rows that exist) in exam-time order, so each index grows
       at its right edge. One institution, 2,000 patients (few, so that the patient index's
       insertion points stay inside the 256 MB buffer pool; the measured query does not
       read that index), 200 doctors, 20 departments, 1% soft-deleted. With ``--reuse``
       (the default) loaded rows are kept between runs and a run continues an unfinished
       load; loading stops at ``--load-budget-min`` and the figures are taken on the rows
       loaded so far (stated in RESULTS.md). The time spent loading is summed over the
       (resumed) loads in ``bench/.work/paging/load.json`` and reported with the figures.
    2. SQL level: the search of the institution's cases newest first, the page of 20 rows
       that starts after 5/6 of them (offset 10,000,000 at 12M rows), fetched by the
       keyset statement of ``medflow.records.search`` (``--sql-runs`` times) and by the
       same statement with ``OFFSET`` instead of the cursor (``--offset-runs`` times),
       both as the search runs them (page + 1 rows). Time: the server's own duration of
       each run (session profiling, ``SHOW PROFILES``); for the keyset also the round trip
       a PyMySQL client on 127.0.0.1 sees (network and pure-Python decoding included).
       Rows examined: growth of the session's ``Handler_read_*`` counters for one run.
    3. HTTP: the ``case_search`` function alone under functions-framework (as its Knative
       Service runs it) on the same database; a real doctor account; ``--http-requests``
       sequential ``GET /cases?limit=20&cursor=…`` for that deep page after a warm-up, over
       one keep-alive connection; P99 of the client-side wall time.

Writes ``bench/results/paging.json`` and a line in ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterator

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from record import record  # noqa: E402

from medflow.auth.principal import Principal  # noqa: E402
from medflow.auth.tokens import issue_access_token  # noqa: E402
from medflow.bootstrap import build_keys  # noqa: E402
from medflow.config import Settings  # noqa: E402
from medflow.db import migrate  # noqa: E402
from medflow.db.engine import sync_url  # noqa: E402
from medflow.db.schema import departments, institutions, patients, persons, users  # noqa: E402
from medflow.ids import utcnow  # noqa: E402
from medflow.records.search import CaseFilter, Keyset, encode_keyset, search_statement  # noqa: E402

DATABASE = "medflow_bench_paging"
WORK = REPO / "bench" / ".work" / "paging"
PAGE = 20
CHUNK = 250_000
PATIENTS, DOCTORS, DEPARTMENTS = 2_000, 200, 20
FIRST_EXAM = datetime(2014, 1, 1, tzinfo=timezone.utc)
READ_COUNTERS = ("Handler_read_first", "Handler_read_key", "Handler_read_last", "Handler_read_next",
                 "Handler_read_prev", "Handler_read_rnd", "Handler_read_rnd_next")


# --- ids of the generated world: Crockford digits only, 26 characters ----------------------

def ref_id(kind: int, n: int) -> str:
    """Patient (1), doctor (2), department (3), institution (4), user (5) ids."""
    return f"{kind}{n:025d}"


INSTITUTION = ref_id(4, 1)
BENCH_DOCTOR = ref_id(5, 1)


# --- loading -------------------------------------------------------------------------------

def bench_url() -> str:
    base = os.environ.get("MEDFLOW_TEST_MYSQL_URL")
    if not base:
        sys.exit("MEDFLOW_TEST_MYSQL_URL is not set: run `set -a && . .local/infra/env.sh && set +a` first")
    return make_url(base).set(database=DATABASE).render_as_string(hide_password=False)


def prepare_database(url: str, reuse: bool) -> sa.Engine:
    admin = sa.create_engine(sync_url(make_url(url).set(database=make_url(os.environ["MEDFLOW_TEST_MYSQL_URL"]).database)))
    with admin.begin() as conn:
        if not reuse:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{DATABASE}`")
        conn.exec_driver_sql(f"CREATE DATABASE IF NOT EXISTS `{DATABASE}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    admin.dispose()
    migrate.upgrade(url)
    return sa.create_engine(sync_url(url), pool_size=2)


def ensure_reference_rows(engine: sa.Engine) -> None:
    """The institution, its departments, doctors and patients the cases point to (once)."""
    with engine.begin() as conn:
        if conn.execute(sa.select(institutions.c.id).where(institutions.c.id == INSTITUTION)).first():
            return
        now = utcnow()
        conn.execute(institutions.insert().values(id=INSTITUTION, code="BENCH", name="Bench hospital",
                                                  created_at=now, updated_at=now))
        conn.execute(departments.insert(), [{"id": ref_id(3, n), "institution_id": INSTITUTION, "code": f"D{n}",
                                             "name": f"Department {n}", "created_at": now, "updated_at": now}
                                            for n in range(DEPARTMENTS)])
        conn.execute(users.insert(), [{"id": ref_id(2, n), "institution_id": INSTITUTION, "username": f"dr{n}",
                                       "role": "doctor", "display_name": f"Doctor {n}", "created_at": now,
                                       "updated_at": now} for n in range(DOCTORS)])
        conn.execute(users.insert().values(id=BENCH_DOCTOR, institution_id=INSTITUTION, username="bench",
                                           role="doctor", display_name="Bench", created_at=now, updated_at=now))
        conn.execute(persons.insert(), [{"id": ref_id(1, n), "created_at": now} for n in range(PATIENTS)])
        conn.execute(patients.insert(), [{"id": ref_id(1, n), "institution_id": INSTITUTION, "person_id": ref_id(1, n),
                                          "mrn": f"B{n}", "display_name": f"Patient {n}", "created_at": now,
                                          "updated_at": now} for n in range(PATIENTS)])


def loaded_rows(engine: sa.Engine) -> int:
    """Case ids are 1..N in load order, so the largest id says how many rows are in."""
    with engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT COALESCE(MAX(id), 0) FROM cases").scalar())


def chunk_statement(first: int, last: int) -> str:
    """Cases ``first``..``last``: two every 40 s of exam time (a pair shares its time, so the
    id breaks the tie), attributes cycling through their values."""
    return f"""
INSERT INTO cases (id, institution_id, patient_id, exam_type, modality, exam_time, department_id, doctor_id,
                   status, annotation_status, quality_label, title, diagnosis_codes, version,
                   created_at, updated_at, deleted_at)
SELECT LPAD(seq, 26, '0'), '{INSTITUTION}',
       CONCAT('1', LPAD((seq * 7919) MOD {PATIENTS}, 25, '0')),
       ELT(1 + seq MOD 4, 'imaging', 'lab', 'consult', 'ecg'),
       ELT(1 + seq MOD 5, 'CT', 'MR', 'XR', 'US', 'OT'),
       TIMESTAMP'{FIRST_EXAM:%Y-%m-%d %H:%M:%S}' + INTERVAL (seq DIV 2) * 40 SECOND,
       CONCAT('3', LPAD(seq MOD {DEPARTMENTS}, 25, '0')),
       CONCAT('2', LPAD(seq MOD {DOCTORS}, 25, '0')),
       'final', ELT(1 + seq MOD 7 MOD 4, 'none', 'in_progress', 'annotated', 'reviewed'),
       ELT(1 + seq MOD 11 MOD 4, 'unchecked', 'good', 'incomplete', 'poor'),
       CONCAT('Exam ', seq), '["J18.9"]', 1, NOW(6), NOW(6), IF(seq MOD 100 = 0, NOW(6), NULL)
FROM seq_{first}_to_{last}"""


LOAD_LOG = WORK / "load.json"


def load_history() -> dict[str, float]:
    """Rows loaded and seconds spent loading them, summed over every (resumed) load of the
    kept database: how long building it took, reported with the figures."""
    return json.loads(LOAD_LOG.read_text()) if LOAD_LOG.exists() else {"rows": 0, "seconds": 0.0}


def _note_load(rows: int, seconds: float, fresh: bool) -> None:
    before = {"rows": 0, "seconds": 0.0} if fresh else load_history()
    WORK.mkdir(parents=True, exist_ok=True)
    LOAD_LOG.write_text(json.dumps({"rows": before["rows"] + rows, "seconds": round(before["seconds"] + seconds, 1)}))


def load_cases(engine: sa.Engine, target: int, budget_s: float) -> int:
    """Load cases up to ``target`` (or until ``budget_s`` is spent); returns the rows now in."""
    start_rows, started = loaded_rows(engine), time.perf_counter()
    done = start_rows
    if done >= target:
        return done
    print(f"loading cases {done + 1:,}..{target:,} ({CHUNK:,} a statement, budget {budget_s / 60:.0f} min)", flush=True)
    with engine.connect() as conn:
        conn.exec_driver_sql("SET SESSION foreign_key_checks = 0, unique_checks = 0")
        while done < target:
            if time.perf_counter() - started > budget_s:
                print(f"load budget spent at {done:,} rows", flush=True)
                break
            last = min(done + CHUNK, target)
            chunk_started = time.perf_counter()
            conn.exec_driver_sql(chunk_statement(done + 1, last))
            conn.commit()
            _note_load(last - done, time.perf_counter() - chunk_started, fresh=done == 0)
            done = last
            spent = time.perf_counter() - started
            print(f"  {done:>12,} rows  {spent:7.0f} s  {(done - start_rows) / spent:8,.0f} rows/s", flush=True)
        conn.exec_driver_sql("ANALYZE TABLE cases").all()
    return done


# --- SQL level -----------------------------------------------------------------------------

def _raw(conn: sa.Connection, sql: str) -> list[tuple]:
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(sql)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _counters(conn: sa.Connection) -> int:
    return sum(int(v) for name, v in _raw(conn, "SHOW SESSION STATUS LIKE 'Handler_read%'") if name in READ_COUNTERS)


def rows_examined(conn: sa.Connection, sql: str) -> tuple[list[tuple], int]:
    """One execution of ``sql``: its rows, and how many index and table rows the server
    read for it (the counters' growth, less what reading the counters adds)."""
    first, second = _counters(conn), _counters(conn)
    rows = _raw(conn, sql)
    return rows, _counters(conn) - second - (second - first)


def client_timings_ms(conn: sa.Connection, sql: str, runs: int) -> list[float]:
    """Wall time of each run as the client sees it: send, execute, receive and decode."""
    cursor = conn.connection.dbapi_connection.cursor()
    result = []
    try:
        for _ in range(runs):
            started = time.perf_counter()
            cursor.execute(sql)
            cursor.fetchall()
            result.append((time.perf_counter() - started) * 1000)
    finally:
        cursor.close()
    return result


def server_timings_ms(conn: sa.Connection, sql: str, runs: int) -> list[float]:
    """The server's own duration of each run (session profiling, 100 runs per batch: the
    most it keeps), which leaves out the network and the client driver."""
    _raw(conn, "SET SESSION profiling = 1, profiling_history_size = 100")
    result: list[float] = []
    try:
        while len(result) < runs:
            batch = min(100, runs - len(result))
            for _ in range(batch):
                _raw(conn, sql)
            # SHOW PROFILES keeps the first 300 characters of each statement
            profiles = [row for row in _raw(conn, "SHOW PROFILES") if sql.startswith(row[2])]
            result += [float(row[1]) * 1000 for row in profiles[-batch:]]
    finally:
        _raw(conn, "SET SESSION profiling = 0")
    return result


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def sql_text(conn: sa.Connection, statement: sa.Select) -> str:
    return str(statement.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))


def deep_keyset(conn: sa.Connection, f: CaseFilter, depth: int) -> Keyset:
    """The keyset of the row just before the page at ``depth`` (found once, by OFFSET)."""
    row = conn.execute(search_statement(f, 1, None).offset(depth - 1)).one()
    return Keyset(row.sort_time, row.sort_id)


def sql_figures(engine: sa.Engine, depth: int, keyset_runs: int, offset_runs: int) -> tuple[dict[str, float], Keyset]:
    f = CaseFilter(INSTITUTION)
    with engine.connect() as conn:
        print(f"finding the keyset at depth {depth:,} (one OFFSET query)...", flush=True)
        keyset = deep_keyset(conn, f, depth)
        by_keyset = sql_text(conn, search_statement(f, PAGE + 1, keyset))
        by_offset = sql_text(conn, search_statement(f, PAGE + 1, None).offset(depth))
        keyset_page, keyset_examined = rows_examined(conn, by_keyset)
        offset_page, offset_examined = rows_examined(conn, by_offset)
        assert [r[0] for r in keyset_page] == [r[0] for r in offset_page], "keyset and OFFSET pages differ"
        figures = {"keyset_rows_examined": keyset_examined, "offset_rows_examined": offset_examined}
        client_timings_ms(conn, by_keyset, 100)  # warm-up
        keyset_server = server_timings_ms(conn, by_keyset, keyset_runs)
        keyset_client = client_timings_ms(conn, by_keyset, keyset_runs)
        offset_server = server_timings_ms(conn, by_offset, offset_runs)
    figures.update(
        keyset_sql_median_ms=round(statistics.median(keyset_server), 3),
        keyset_sql_p99_ms=round(percentile(keyset_server, 99), 3),
        keyset_client_median_ms=round(statistics.median(keyset_client), 3),
        keyset_client_p99_ms=round(percentile(keyset_client, 99), 3),
        offset_sql_median_ms=round(statistics.median(offset_server), 1),
        offset_sql_p99_ms=round(percentile(offset_server, 99), 1))
    print(f"keyset, {keyset_runs} runs: server median {figures['keyset_sql_median_ms']:.3f} ms, P99 "
          f"{figures['keyset_sql_p99_ms']:.3f} ms; PyMySQL round trip median {figures['keyset_client_median_ms']:.3f} ms, "
          f"P99 {figures['keyset_client_p99_ms']:.3f} ms; {figures['keyset_rows_examined']} rows examined", flush=True)
    print(f"OFFSET, {offset_runs} runs: server median {figures['offset_sql_median_ms']:,.0f} ms, P99 "
          f"{figures['offset_sql_p99_ms']:,.0f} ms; {figures['offset_rows_examined']:,} rows examined", flush=True)
    return figures, keyset


# --- HTTP ----------------------------------------------------------------------------------

def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def case_search_function(url: str) -> Iterator[str]:
    """The case_search function alone under functions-framework; yields its base URL."""
    port = free_port()
    WORK.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDFLOW_")}
    env.update(MEDFLOW_DATABASE_URL=url, MEDFLOW_DATA_DIR=str(WORK))
    env.update({k: v for k, v in os.environ.items() if k == "MEDFLOW_LOG_LEVEL"})
    command = [str(Path(sys.executable).parent / "functions-framework"), "--asgi", "--target", "case_search",
               "--source", str(REPO / "functions" / "case_search" / "main.py"), "--host", "127.0.0.1", "--port", str(port)]
    with open(WORK / "case_search.log", "wb") as log:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_ready(f"{base}/healthz", process)
            yield base
        finally:
            process.terminate()
            process.wait(10)


def _wait_ready(url: str, process: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"case_search exited; see {WORK / 'case_search.log'}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    sys.exit(f"case_search not ready; see {WORK / 'case_search.log'}")


def doctor_token() -> str:
    """An access token of the bench doctor, signed with the key set the function reads."""
    keys = build_keys(Settings(data_dir=WORK))
    principal = Principal(BENCH_DOCTOR, "doctor", INSTITUTION)
    return issue_access_token(keys, principal, issuer="medflow", now=utcnow(), ttl_s=3600).token


def http_figures(url: str, keyset: Keyset, requests: int) -> dict[str, float]:
    WORK.mkdir(parents=True, exist_ok=True)
    token = doctor_token()
    with case_search_function(url) as base, httpx.Client(base_url=base, timeout=30,
                                                          headers={"authorization": f"Bearer {token}"}) as client:
        def deep_page() -> None:
            response = client.get("/cases", params={"limit": PAGE, "cursor": encode_keyset(keyset)})
            assert response.status_code == 200 and len(response.json()["items"]) == PAGE, response.text

        for _ in range(100):
            deep_page()
        wall_ms = _timed(deep_page, requests)
    print(f"HTTP: median {statistics.median(wall_ms):.2f} ms, P99 {percentile(wall_ms, 99):.2f} ms "
          f"over {requests} sequential requests", flush=True)
    return {"keyset_http_median_ms": round(statistics.median(wall_ms), 2),
            "keyset_http_p99_ms": round(percentile(wall_ms, 99), 2)}


def _timed(call: Callable[[], None], times: int) -> list[float]:
    result = []
    for _ in range(times):
        started = time.perf_counter()
        call()
        result.append((time.perf_counter() - started) * 1000)
    return result


# --- main ----------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=12_000_000)
    parser.add_argument("--reuse", action=argparse.BooleanOptionalAction, default=True,
                        help="keep (and continue) the loaded database between runs")
    parser.add_argument("--load-budget-min", type=float, default=25)
    parser.add_argument("--sql-runs", type=int, default=1000)
    parser.add_argument("--offset-runs", type=int, default=5,
                        help="OFFSET runs (about a minute each at 12M rows; P99 of 5 is the slowest)")
    parser.add_argument("--http-requests", type=int, default=1000)
    parser.add_argument("--load-only", action="store_true", help="load (or continue loading), then stop")
    args = parser.parse_args()

    url = bench_url()
    engine = prepare_database(url, args.reuse)
    ensure_reference_rows(engine)
    rows = load_cases(engine, args.rows, args.load_budget_min * 60)
    if args.load_only:
        return
    depth = rows * 5 // 6
    figures, keyset = sql_figures(engine, depth, args.sql_runs, args.offset_runs)
    figures.update(http_figures(url, keyset, args.http_requests))
    history = load_history()
    figures.update(rows=rows, depth=depth, keyset_runs=args.sql_runs, offset_runs=args.offset_runs,
                   http_requests=args.http_requests)
    if history["rows"]:
        figures.update(load_s=round(history["seconds"]), load_rows_per_s=round(history["rows"] / history["seconds"]))
    engine.dispose()
    line = summary(figures, rows, args.rows)
    record("paging", figures, line)
    print(line)


def summary(f: dict[str, float], rows: int, wanted: int) -> str:
    ratio = f["offset_sql_p99_ms"] / f["keyset_sql_p99_ms"]
    scale = f"{rows:,} cases" if rows >= wanted else f"{rows:,} cases (NOT the {wanted:,} asked: the load budget ran out)"
    load = (f"; building the database took {f['load_s'] / 60:.1f} min ({f['load_rows_per_s']:,.0f} rows/s, every "
            f"index in place)" if "load_s" in f else "")
    return (f"deep page (20 rows at offset {f['depth']:,.0f}) on MariaDB 10.11 with {scale}: keyset median "
            f"{f['keyset_sql_median_ms']:.2f} ms / P99 {f['keyset_sql_p99_ms']:.2f} ms over {f['keyset_runs']:,.0f} runs "
            f"(server time; PyMySQL round trip {f['keyset_client_median_ms']:.2f} / {f['keyset_client_p99_ms']:.2f} ms), "
            f"{f['keyset_rows_examined']:,.0f} rows examined; OFFSET median {f['offset_sql_median_ms']:,.0f} ms / P99 "
            f"{f['offset_sql_p99_ms']:,.0f} ms over {f['offset_runs']:,.0f} runs, {f['offset_rows_examined']:,.0f} rows "
            f"examined; OFFSET/keyset P99 "
            f"≈ {ratio:,.0f}×; through the case_search function over HTTP P99 {f['keyset_http_p99_ms']:.1f} ms "
            f"(median {f['keyset_http_median_ms']:.1f} ms, {f['http_requests']:,.0f} sequential requests){load}")


if __name__ == "__main__":
    main()
