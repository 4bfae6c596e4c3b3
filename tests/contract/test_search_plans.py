"""Case search (``medflow.records.search``): what it finds, on both engines, and what it
costs, on MariaDB.

What it finds (SQLite and MariaDB): a small institution built through the records use
cases, searched with every filter alone and in combinations; each answer is compared
with a plain-Python reading of the filter over every stored case, walking all pages.

What it costs (MariaDB): 200,000 cases of one institution (and 20,000 of another),
bulk-inserted. For each main query shape a page deep in the result (80% of the way
through, 158,000 rows deep for the unfiltered search) is fetched by keyset and by
OFFSET, and the rows the server actually read are counted with its handler counters
(``Handler_read_*``: every index or table row fetched). The keyset page must read no more
than 5 × the page size + 5; the OFFSET page reads everything it skips.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

import pytest
import sqlalchemy as sa

from conftest import create_mysql_database, drop_mysql_database
from medflow.cache.memory import MemoryCache, MemoryStore
from medflow.db import migrate
from medflow.db.engine import Database, sync_url
from medflow.db.schema import case_diagnoses, cases, departments, institutions, patients, persons, users
from medflow.errors import Problem
from medflow.ids import new_id, utcnow
from medflow.pagination import MAX_PAGE_SIZE, encode_cursor
from medflow.records.cases import NewCase, create_case, delete_case, update_case
from medflow.records.patients import NewPatient, register_patient
from medflow.records.search import CaseFilter, Keyset, driving_index, encode_keyset, search_cases, search_statement

BASE_TIME = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)
NO_CACHE = MemoryCache(MemoryStore())  # the corpus is written before anyone reads released summaries
TITLES = ("Chest CT", "Renal 50% done", "Renal 501", "Knee_MRI", "Knee MRI", "")
CODES = ((), ("J18.9",), ("I10",), ("J18.9", "I10"))


# --- a small institution, built through the use cases -------------------------------------

@dataclass
class Corpus:
    db: Database
    home: str                    # the searching institution
    other: str                   # another institution with look-alike cases
    patients: list[str]
    doctors: list[str]
    departments: list[str]
    other_patient: str
    stored: list[dict]           # every case of both institutions, as stored


async def _institution(db: Database, code: str) -> tuple[str, list[str], list[str]]:
    """An institution with two departments and two doctors (ids)."""
    now, institution_id = utcnow(), new_id()
    dept_ids, doctor_ids = [new_id(), new_id()], [new_id(), new_id()]
    async with db.transaction() as conn:
        await conn.execute(institutions.insert().values(id=institution_id, code=code, name=f"Hospital {code}",
                                                        created_at=now, updated_at=now))
        for n, dept_id in enumerate(dept_ids):
            await conn.execute(departments.insert().values(id=dept_id, institution_id=institution_id, code=f"D{n}",
                                                           name=f"Department {n}", created_at=now, updated_at=now))
        for n, doctor_id in enumerate(doctor_ids):
            await conn.execute(users.insert().values(id=doctor_id, institution_id=institution_id, username=f"dr{n}",
                                                     role="doctor", display_name=f"Doctor {n}", created_at=now,
                                                     updated_at=now))
    return institution_id, dept_ids, doctor_ids


async def _cases(db: Database, institution_id: str, patient_ids: list[str], dept_ids: list[str],
                 doctor_ids: list[str], count: int) -> None:
    """``count`` cases whose attributes cycle with different periods, so that every filter
    value meets every other; exam times come in pairs (ties broken by id)."""
    for i in range(count):
        created = await create_case(db, institution_id, NewCase(
            patient_id=patient_ids[i % len(patient_ids)], exam_type=("imaging", "lab")[(i // 5) % 2],
            modality=("CT", "MR", "XR")[(i // 2) % 3], exam_time=BASE_TIME + timedelta(hours=i // 2),
            title=TITLES[i % len(TITLES)], department_id=None if i % 7 == 3 else dept_ids[i % 2],
            doctor_id=(*doctor_ids, None)[(i // 3) % 3], diagnosis_codes=CODES[i % 4]), actor_id=doctor_ids[0])
        labels = {"annotation_status": ("none", "in_progress", "annotated", "reviewed")[(i // 6) % 4],
                  "quality_label": ("unchecked", "good", "incomplete", "poor")[(i // 8) % 4]}
        updated = await update_case(db, NO_CACHE, institution_id, created["id"], labels, expected_version=1,
                                    actor_id=doctor_ids[0], reason="labels")
        if i % 11 == 5:
            await delete_case(db, NO_CACHE, institution_id, created["id"], expected_version=updated["version"],
                              actor_id=doctor_ids[0], reason="entered in error")


async def _build_corpus(db: Database) -> Corpus:
    home, home_depts, home_doctors = await _institution(db, "HOME")
    other, other_depts, other_doctors = await _institution(db, "OTHER")
    home_patients = [(await register_patient(db, home, NewPatient(mrn=f"H-{n}", display_name=f"Patient {n}"))).id
                     for n in range(3)]
    other_patients = [(await register_patient(db, other, NewPatient(mrn="O-1", display_name="Patient O"))).id]
    await _cases(db, home, home_patients, home_depts, home_doctors, 60)
    await _cases(db, other, other_patients, other_depts, other_doctors, 24)
    async with db.connect() as conn:
        stored = [dict(row) for row in (await conn.execute(sa.select(cases))).mappings()]
    return Corpus(db, home, other, home_patients, home_doctors, home_depts, other_patients[0], stored)


@pytest.fixture(scope="module", params=["sqlite", "mariadb"])
async def corpus(request, tmp_path_factory):
    url = (f"sqlite:///{tmp_path_factory.mktemp('search') / 'search.sqlite3'}" if request.param == "sqlite"
           else create_mysql_database())
    migrate.upgrade(url)
    db = Database(url)
    try:
        yield await _build_corpus(db)
    finally:
        await db.close()
        if request.param == "mariadb":
            drop_mysql_database(url)


def expected_ids(corpus: Corpus, f: CaseFilter) -> list[str]:
    """The specification: the stored cases the filter describes, newest first (ties by id)."""
    found = [c for c in corpus.stored if _matches(c, f)]
    return [c["id"] for c in sorted(found, key=lambda c: (c["exam_time"], c["id"]), reverse=True)]


def _matches(case: dict, f: CaseFilter) -> bool:
    equalities = ("patient_id", "exam_type", "modality", "annotation_status", "doctor_id", "department_id",
                  "quality_label")
    codes = case["diagnosis_codes"] or []
    missing = {"department": case["department_id"] is None, "doctor": case["doctor_id"] is None,
               "diagnosis": not codes, "title": case["title"] == ""}
    return (case["institution_id"] == f.institution_id
            and all(getattr(f, name) is None or case[name] == getattr(f, name) for name in equalities)
            and (f.diagnosis_code is None or f.diagnosis_code in codes)
            and (f.time_from is None or case["exam_time"] >= f.time_from)
            and (f.time_to is None or case["exam_time"] < f.time_to)
            and (f.title_contains is None or f.title_contains.lower() in case["title"].lower())
            and (f.include_deleted or case["deleted_at"] is None)
            and all(missing[name] for name in f.missing))


async def walk(db: Database, f: CaseFilter, limit: int) -> list[str]:
    """Every page from the first to the last, following the cursors; checks each page's size."""
    ids, cursor = [], None
    for _ in range(1000):
        page, cursor = await search_cases(db, f, limit, cursor)
        assert len(page) <= limit and (cursor is None or len(page) == limit)
        ids += [case.id for case in page]
        if cursor is None:
            return ids
    raise AssertionError("the walk does not end")


def _hours(n: int) -> datetime:
    return BASE_TIME + timedelta(hours=n)


FILTERS: dict[str, Callable[[Corpus], CaseFilter]] = {
    "patient": lambda c: CaseFilter(c.home, patient_id=c.patients[1]),
    "doctor": lambda c: CaseFilter(c.home, doctor_id=c.doctors[0]),
    "department": lambda c: CaseFilter(c.home, department_id=c.departments[1]),
    "modality": lambda c: CaseFilter(c.home, modality="MR"),
    "exam type": lambda c: CaseFilter(c.home, exam_type="lab"),
    "annotation status": lambda c: CaseFilter(c.home, annotation_status="reviewed"),
    "quality label": lambda c: CaseFilter(c.home, quality_label="poor"),
    "diagnosis": lambda c: CaseFilter(c.home, diagnosis_code="I10"),
    "time range": lambda c: CaseFilter(c.home, time_from=_hours(5), time_to=_hours(15)),
    "time from": lambda c: CaseFilter(c.home, time_from=_hours(20)),
    "time to": lambda c: CaseFilter(c.home, time_to=_hours(7)),
    "title, any case": lambda c: CaseFilter(c.home, title_contains="chest"),
    "title with a literal %": lambda c: CaseFilter(c.home, title_contains="50%"),
    "title with a literal _": lambda c: CaseFilter(c.home, title_contains="Knee_"),
    "missing department": lambda c: CaseFilter(c.home, missing=frozenset({"department"})),
    "missing doctor": lambda c: CaseFilter(c.home, missing=frozenset({"doctor"})),
    "missing diagnosis": lambda c: CaseFilter(c.home, missing=frozenset({"diagnosis"})),
    "missing title": lambda c: CaseFilter(c.home, missing=frozenset({"title"})),
    "missing doctor and department": lambda c: CaseFilter(c.home, missing=frozenset({"doctor", "department"})),
    "patient + modality": lambda c: CaseFilter(c.home, patient_id=c.patients[0], modality="CT"),
    "doctor + diagnosis": lambda c: CaseFilter(c.home, doctor_id=c.doctors[1], diagnosis_code="J18.9"),
    "diagnosis + quality + title": lambda c: CaseFilter(c.home, diagnosis_code="J18.9", quality_label="good",
                                                        title_contains="renal"),
    "department + time range + annotation": lambda c: CaseFilter(
        c.home, department_id=c.departments[0], time_from=_hours(3), time_to=_hours(25), annotation_status="in_progress"),
    "patient + diagnosis + time": lambda c: CaseFilter(c.home, patient_id=c.patients[2], diagnosis_code="I10",
                                                       time_to=_hours(20)),
    "doctor + exam type + modality + quality": lambda c: CaseFilter(
        c.home, doctor_id=c.doctors[0], exam_type="imaging", modality="CT", quality_label="unchecked"),
    "missing doctor + diagnosis": lambda c: CaseFilter(c.home, missing=frozenset({"doctor"}), diagnosis_code="I10"),
    "deleted ones too": lambda c: CaseFilter(c.home, include_deleted=True),
}


# --- what it finds ----------------------------------------------------------------------

async def test_pages_walk_every_case_once_newest_first(corpus):
    everything = CaseFilter(corpus.home)
    walked = await walk(corpus.db, everything, limit=4)
    assert walked == expected_ids(corpus, everything)
    assert len(walked) == len(set(walked)) > 40
    times = [c["exam_time"] for c in corpus.stored if c["id"] in set(walked)]
    assert len(times) > len(set(times)), "the corpus must hold ties on exam time for this test to mean anything"


@pytest.mark.parametrize("name", FILTERS)
async def test_each_filter_and_combination_returns_exactly_its_cases(corpus, name):
    f = FILTERS[name](corpus)
    wanted = expected_ids(corpus, f)
    assert wanted, f"the corpus has no case for {name}: the test would prove nothing"
    assert await walk(corpus.db, f, limit=3) == wanted


async def test_a_page_lists_each_cases_summary(corpus):
    page, _ = await search_cases(corpus.db, CaseFilter(corpus.home, diagnosis_code="I10"), 1, None)
    stored = next(c for c in corpus.stored if c["id"] == page[0].id)
    summary = vars(page[0])
    assert summary == {k: stored[k] for k in summary}
    assert "I10" in summary["diagnosis_codes"]


async def test_soft_deleted_cases_are_left_out_unless_asked_for(corpus):
    deleted = {c["id"] for c in corpus.stored if c["deleted_at"] is not None and c["institution_id"] == corpus.home}
    assert deleted
    assert not deleted & set(await walk(corpus.db, CaseFilter(corpus.home), MAX_PAGE_SIZE))
    assert deleted <= set(await walk(corpus.db, CaseFilter(corpus.home, include_deleted=True), MAX_PAGE_SIZE))


async def test_another_institutions_cases_never_appear(corpus):
    theirs = {c["id"] for c in corpus.stored if c["institution_id"] == corpus.other}
    assert theirs
    for f in [CaseFilter(corpus.home, include_deleted=True), CaseFilter(corpus.home, diagnosis_code="I10"),
              CaseFilter(corpus.home, modality="CT", time_from=_hours(0), time_to=_hours(12))]:
        assert not theirs & set(await walk(corpus.db, f, MAX_PAGE_SIZE))
    assert await walk(corpus.db, CaseFilter(corpus.home, patient_id=corpus.other_patient), 10) == []


async def test_the_second_page_starts_right_after_the_first(corpus):
    f = CaseFilter(corpus.home, modality="CT")
    first, cursor = await search_cases(corpus.db, f, 5, None)
    second, _ = await search_cases(corpus.db, f, 5, cursor)
    assert [c.id for c in first + second] == expected_ids(corpus, f)[:10]
    assert (first[-1].exam_time, first[-1].id) > (second[0].exam_time, second[0].id)


# --- what it refuses -------------------------------------------------------------------

def _refused(exc: pytest.ExceptionInfo, status: int, code: str) -> Problem:
    assert (exc.value.status, exc.value.code) == (status, code)
    return exc.value


@pytest.mark.parametrize("gap", [timedelta(0), timedelta(hours=-1)], ids=["empty", "reversed"])
async def test_a_time_range_that_ends_before_it_starts_is_refused(corpus, gap):
    f = CaseFilter(corpus.home, time_from=_hours(5), time_to=_hours(5) + gap)
    with pytest.raises(Problem) as exc:
        await search_cases(corpus.db, f, 10, None)
    problem = _refused(exc, 422, "validation-failed")
    assert [e.loc for e in problem.errors] == ["query.time_to"]


async def test_a_time_without_a_zone_is_refused(corpus):
    with pytest.raises(Problem) as exc:
        await search_cases(corpus.db, CaseFilter(corpus.home, time_from=datetime(2026, 1, 1)), 10, None)
    assert [e.loc for e in _refused(exc, 422, "validation-failed").errors] == ["query.time_from"]


async def test_an_unknown_missing_field_is_refused(corpus):
    with pytest.raises(Problem) as exc:
        await search_cases(corpus.db, CaseFilter(corpus.home, missing=frozenset({"exam_time"})), 10, None)
    assert [e.loc for e in _refused(exc, 422, "validation-failed").errors] == ["query.missing"]


@pytest.mark.parametrize("limit", [0, -1, MAX_PAGE_SIZE + 1])
async def test_a_page_size_out_of_range_is_refused(corpus, limit):
    with pytest.raises(Problem) as exc:
        await search_cases(corpus.db, CaseFilter(corpus.home), limit, None)
    _refused(exc, 422, "validation-failed")


TAMPERED = {
    "not base64 json": "%%%not-a-cursor",
    "wrong arity": encode_cursor(["2026-03-01T08:00:00+00:00"]),
    "time does not parse": encode_cursor(["yesterday", "01J0000000000000000000000A"]),
    "time without zone": encode_cursor(["2026-03-01T08:00:00", "01J0000000000000000000000A"]),
    "id not a string": encode_cursor(["2026-03-01T08:00:00+00:00", 12]),
    "id too long": encode_cursor(["2026-03-01T08:00:00+00:00", "0" * 27]),
    "time not a string": encode_cursor([1767225600, "01J0000000000000000000000A"]),
}


@pytest.mark.parametrize("name", TAMPERED)
async def test_a_tampered_cursor_is_a_bad_request(corpus, name):
    with pytest.raises(Problem) as exc:
        await search_cases(corpus.db, CaseFilter(corpus.home), 10, TAMPERED[name])
    _refused(exc, 400, "invalid-cursor")


# --- what it costs, on MariaDB ---------------------------------------------------------

DEEP_CASES = 200_000
OTHER_CASES = 20_000
PAGE = 20
READ_COUNTERS = ("Handler_read_first", "Handler_read_key", "Handler_read_last", "Handler_read_next",
                 "Handler_read_prev", "Handler_read_rnd", "Handler_read_rnd_next")
DEEP_CODES = ("J18.9", "I10", "E11.9", "K21.0", "M54.5")


@dataclass
class DeepCorpus:
    engine: sa.Engine
    home: str
    patients: list[str]
    doctors: list[str]
    departments: list[str]


def _deep_rows(institution_id: str, count: int, refs: dict[str, list[str]], first_id: int, rng: random.Random
               ) -> tuple[list[dict], list[dict]]:
    """``count`` cases, one a minute backwards from now-ish, attributes drawn at random;
    4% lack a doctor, 4% a department, 1% are soft-deleted; 10% carry a second code."""
    now, case_rows, code_rows = utcnow(), [], []
    for n in range(count):
        case_id = f"{first_id + n:026d}"
        exam_time = BASE_TIME - timedelta(minutes=count - n)
        codes = rng.sample(DEEP_CODES, 2 if rng.random() < 0.1 else 1)
        case_rows.append({
            "id": case_id, "institution_id": institution_id, "patient_id": rng.choice(refs["patients"]),
            "exam_type": rng.choice(("imaging", "lab", "consult", "ecg")), "modality": rng.choice(("CT", "MR", "XR", "US", "OT")),
            "exam_time": exam_time, "department_id": None if rng.random() < 0.04 else rng.choice(refs["departments"]),
            "doctor_id": None if rng.random() < 0.04 else rng.choice(refs["doctors"]), "status": "final",
            "annotation_status": rng.choice(("none", "in_progress", "annotated", "reviewed")),
            "quality_label": rng.choice(("unchecked", "good", "incomplete", "poor")), "title": f"Exam {n}",
            "diagnosis_codes": codes, "version": 1, "created_at": now, "updated_at": now,
            "deleted_at": now if rng.random() < 0.01 else None})
        code_rows += [{"case_id": case_id, "code": code, "institution_id": institution_id, "exam_time": exam_time}
                      for code in codes]
    return case_rows, code_rows


def _deep_institution(conn: sa.Connection, code: str) -> dict[str, list[str]]:
    """An institution with 8 patients, 4 doctors and 3 departments; their ids by kind."""
    now, institution_id = utcnow(), new_id()
    refs = {"institution": [institution_id], "patients": [new_id() for _ in range(8)],
            "doctors": [new_id() for _ in range(4)], "departments": [new_id() for _ in range(3)]}
    conn.execute(institutions.insert().values(id=institution_id, code=code, name=code, created_at=now, updated_at=now))
    conn.execute(departments.insert(), [{"id": d, "institution_id": institution_id, "code": f"D{n}", "name": f"D{n}",
                                         "created_at": now, "updated_at": now} for n, d in enumerate(refs["departments"])])
    conn.execute(users.insert(), [{"id": u, "institution_id": institution_id, "username": f"dr{n}", "role": "doctor",
                                   "display_name": f"Dr {n}", "created_at": now, "updated_at": now}
                                  for n, u in enumerate(refs["doctors"])])
    for n, patient_id in enumerate(refs["patients"]):
        person_id = new_id()
        conn.execute(persons.insert().values(id=person_id, created_at=now))
        conn.execute(patients.insert().values(id=patient_id, institution_id=institution_id, person_id=person_id,
                                              mrn=f"M{n}", display_name=f"P{n}", created_at=now, updated_at=now))
    return refs


def _bulk_insert(conn: sa.Connection, table: sa.Table, rows: list[dict], batch: int = 5000) -> None:
    for start in range(0, len(rows), batch):
        conn.execute(table.insert(), rows[start:start + batch])


@pytest.fixture(scope="module")
def deep_corpus():
    url = create_mysql_database()
    migrate.upgrade(url)
    engine = sa.create_engine(sync_url(url))
    rng = random.Random(20261121)
    try:
        with engine.begin() as conn:
            home = _deep_institution(conn, "DEEP")
            other = _deep_institution(conn, "ELSEWHERE")
            for refs, count, first_id in ((home, DEEP_CASES, 1), (other, OTHER_CASES, DEEP_CASES + 1)):
                case_rows, code_rows = _deep_rows(refs["institution"][0], count, refs, first_id, rng)
                _bulk_insert(conn, cases, case_rows)
                _bulk_insert(conn, case_diagnoses, code_rows)
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE TABLE cases, case_diagnoses").all()
        yield DeepCorpus(engine, home["institution"][0], home["patients"], home["doctors"], home["departments"])
    finally:
        engine.dispose()
        drop_mysql_database(url)


def _raw(conn: sa.Connection, sql: str) -> list[tuple]:
    """Rows of a statement sent as is (no parameters, so ``%`` needs no escaping)."""
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(sql)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _counters(conn: sa.Connection) -> dict[str, int]:
    rows = _raw(conn, "SHOW SESSION STATUS LIKE 'Handler_read%'")
    return {name: int(value) for name, value in rows if name in READ_COUNTERS}


def rows_read(conn: sa.Connection, statement: sa.Select) -> tuple[list[sa.Row], int]:
    """The statement's rows and how many index and table rows the server read for it (the
    handler counters' growth, less what reading the counters itself adds)."""
    first, second = _counters(conn), _counters(conn)
    overhead = sum(second.values()) - sum(first.values())
    result = conn.execute(statement).all()
    after = _counters(conn)
    return result, sum(after.values()) - sum(second.values()) - overhead


def _plan(conn: sa.Connection, statement: sa.Select) -> str:
    compiled = statement.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    return " / ".join(f"{row[2]}: {row[3]} on {row[5]}" for row in _raw(conn, f"EXPLAIN {compiled}"))


MAIN_SHAPES: dict[str, Callable[[DeepCorpus], CaseFilter]] = {
    "institution only": lambda d: CaseFilter(d.home),
    "patient": lambda d: CaseFilter(d.home, patient_id=d.patients[3]),
    "doctor": lambda d: CaseFilter(d.home, doctor_id=d.doctors[1]),
    "department": lambda d: CaseFilter(d.home, department_id=d.departments[2]),
    "modality": lambda d: CaseFilter(d.home, modality="MR"),
    "exam type": lambda d: CaseFilter(d.home, exam_type="lab"),
    "annotation status": lambda d: CaseFilter(d.home, annotation_status="annotated"),
    "quality label": lambda d: CaseFilter(d.home, quality_label="incomplete"),
    "time range": lambda d: CaseFilter(d.home, time_from=BASE_TIME - timedelta(minutes=180_000),
                                       time_to=BASE_TIME - timedelta(minutes=20_000)),
    "doctor + time range": lambda d: CaseFilter(d.home, doctor_id=d.doctors[0],
                                                time_from=BASE_TIME - timedelta(minutes=190_000),
                                                time_to=BASE_TIME - timedelta(minutes=10_000)),
    "diagnosis": lambda d: CaseFilter(d.home, diagnosis_code="E11.9"),
    "missing department": lambda d: CaseFilter(d.home, missing=frozenset({"department"})),
    "missing doctor": lambda d: CaseFilter(d.home, missing=frozenset({"doctor"})),
}


def _deep_page(conn: sa.Connection, f: CaseFilter) -> tuple[int, Keyset, list[str], int]:
    """(depth, the keyset just before the page at that depth, the page's ids by OFFSET, rows
    the OFFSET query read): the page starts 80% of the way through the result."""
    total = conn.execute(sa.select(sa.func.count()).select_from(search_statement(f, 10**9, None).subquery())).scalar_one()
    depth = int(total * 0.8)
    rows, offset_reads = rows_read(conn, search_statement(f, PAGE + 1, None).offset(depth - 1))
    return depth, Keyset(rows[0].sort_time, rows[0].sort_id), [r.id for r in rows[1:]], offset_reads


@pytest.mark.real
@pytest.mark.parametrize("shape", MAIN_SHAPES)
def test_a_deep_page_reads_about_a_page_of_rows_where_offset_reads_everything_it_skips(deep_corpus, shape):
    f = MAIN_SHAPES[shape](deep_corpus)
    with deep_corpus.engine.connect() as conn:
        depth, keyset, offset_page, offset_reads = _deep_page(conn, f)
        statement = search_statement(f, PAGE, keyset)
        page, keyset_reads = rows_read(conn, statement)
        plan = _plan(conn, statement)

    assert [r.id for r in page] == offset_page, "keyset and OFFSET must give the same page"
    assert depth >= (150_000 if shape == "institution only" else 1_000)
    assert keyset_reads <= 5 * PAGE + 5, f"{shape}: {keyset_reads} rows read at depth {depth}; plan: {plan}"
    assert offset_reads >= depth >= 100 * keyset_reads, f"{shape}: OFFSET read {offset_reads}, keyset {keyset_reads}"
    assert "range" in plan and driving_index(f) in plan, plan


COMBINATIONS: dict[str, tuple[Callable[[DeepCorpus], CaseFilter], float]] = {
    # the filter, and the share of the driving index's rows the other filters keep
    "doctor + modality": (lambda d: CaseFilter(d.home, doctor_id=d.doctors[2], modality="CT"), 1 / 5),
    "diagnosis + department": (lambda d: CaseFilter(d.home, diagnosis_code="I10", department_id=d.departments[0]), 1 / 3),
    "patient + diagnosis": (lambda d: CaseFilter(d.home, patient_id=d.patients[5], diagnosis_code="K21.0"), 1 / 5),
    "modality + quality + annotation": (lambda d: CaseFilter(d.home, modality="US", quality_label="good",
                                                             annotation_status="reviewed"), 1 / 16),
}


@pytest.mark.real
@pytest.mark.parametrize("shape", COMBINATIONS)
def test_a_combined_deep_page_reads_the_driving_index_rows_the_page_needs(deep_corpus, shape):
    """The other filters are checked on the driving index's rows: a page reads about
    page / share rows (each row read costs an index and a table read, hence 4×)."""
    make, share = COMBINATIONS[shape]
    f = make(deep_corpus)
    with deep_corpus.engine.connect() as conn:
        depth, keyset, offset_page, offset_reads = _deep_page(conn, f)
        page, keyset_reads = rows_read(conn, search_statement(f, PAGE, keyset))

    assert [r.id for r in page] == offset_page
    assert keyset_reads <= 4 * (PAGE + 1) / share, f"{shape}: {keyset_reads} rows read at depth {depth}"
    assert offset_reads > 10 * keyset_reads


@pytest.mark.real
def test_the_first_page_reads_about_a_page_of_rows_too(deep_corpus):
    with deep_corpus.engine.connect() as conn:
        page, reads = rows_read(conn, search_statement(CaseFilter(deep_corpus.home), PAGE, None))
    assert len(page) == PAGE and reads <= 2 * PAGE + 5
