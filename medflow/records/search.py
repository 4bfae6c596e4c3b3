"""Multi-criteria case search: any combination of filters, newest first, keyset pages.

Order and pages
    Cases come newest first, ordered by ``(exam_time DESC, id DESC)`` — a total, stable
    order. A page ends with an opaque cursor holding the last row's ``(exam_time, id)``;
    the next page starts strictly after it. No OFFSET: a deep page costs what the first
    one does.

How a query reaches its rows
    Every search is scoped to one institution. The composite indexes of ``cases`` are
    ``(institution_id, <filter column>, exam_time, id)``, and ``case_diagnoses`` has
    ``(institution_id, code, exam_time, case_id)``. A search is *driven* by one index: the
    one of its most selective equality filter (``DRIVERS``, in order), or
    ``(institution_id, exam_time, id)`` when it has none. The rows of that index are read
    backwards from the cursor (or the ``time_to`` bound) and every other filter is checked
    on the rows read, so a page reads about ``limit`` rows when the driving filter is
    the only one, and ``limit`` divided by the share of rows the other filters keep
    otherwise. ``title_contains`` (a ``LIKE '%…%'``), ``missing=title`` and
    ``missing=diagnosis`` have no index: they read rows until the page is full.

Why ``FORCE INDEX``
    MariaDB 10.11 answers ``institution_id = ? AND (exam_time < ? OR (exam_time = ? AND
    id < ?)) ORDER BY exam_time DESC, id DESC LIMIT 20`` (when the row is not covered
    by the index) with a ``ref`` scan on ``institution_id`` alone: its ORDER BY … LIMIT
    costing assumes matching rows are spread evenly through the index, so it walks from
    the newest row and reads every row before the cursor (1.5 million rows for a page at
    depth 1.5 million). The row-constructor form ``(exam_time, id) < (?, ?)`` and an extra
    redundant ``exam_time <= ?`` bound are planned the same way. Naming the driving index
    with ``FORCE INDEX`` makes the optimizer cost only that index, and it then chooses a
    ``range`` over all of its columns that starts at the cursor: 21 rows read. The hint is
    rendered for MySQL-family dialects only (TiDB accepts the same syntax); SQLite gets
    the same query without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Sequence

import sqlalchemy as sa

from medflow.db.engine import Database
from medflow.db.schema import case_diagnoses, cases
from medflow.errors import FieldError, bad_request, validation_failed
from medflow.pagination import MAX_PAGE_SIZE, decode_cursor, encode_cursor

# Fields a supervision search can ask to be missing.
MISSING_FIELDS = ("department", "doctor", "diagnosis", "title")

_HINT_DIALECTS = ("mysql", "mariadb")


@dataclass(frozen=True)
class CaseFilter:
    """What to search for; every field but ``institution_id`` is optional and they combine
    with AND. ``time_from``/``time_to`` are timezone-aware and half-open: ``[from, to)``.
    ``title_contains`` matches a substring of the title (``%`` and ``_`` are literal;
    ASCII letters match either case on both engines).
    ``missing`` keeps cases that lack each named field (``MISSING_FIELDS``)."""

    institution_id: str
    patient_id: str | None = None
    time_from: datetime | None = None
    time_to: datetime | None = None
    exam_type: str | None = None
    modality: str | None = None
    annotation_status: str | None = None
    doctor_id: str | None = None
    department_id: str | None = None
    diagnosis_code: str | None = None
    quality_label: str | None = None
    title_contains: str | None = None
    include_deleted: bool = False
    missing: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class CaseSummary:
    """One case as a search lists it."""

    id: str
    patient_id: str
    exam_type: str
    modality: str
    exam_time: datetime
    department_id: str | None
    doctor_id: str | None
    status: str
    annotation_status: str
    quality_label: str
    title: str
    diagnosis_codes: list[str]
    version: int


@dataclass(frozen=True)
class Keyset:
    """A position in the search order: results continue with rows strictly older than
    ``(exam_time, id)``."""

    exam_time: datetime
    id: str


# --- choosing the driving index -----------------------------------------------------------

def _index_name(table: sa.Table, *columns: str) -> str:
    """The name of ``table``'s index on exactly ``columns`` (fails at import if the schema
    loses it, rather than silently planning without it)."""
    for index in table.indexes:
        if tuple(c.name for c in index.columns) == columns:
            return str(index.name)
    raise LookupError(f"{table.name} has no index on {columns}")


@dataclass(frozen=True)
class _Driver:
    """An equality filter that can drive a search through its composite index."""

    applies: Callable[[CaseFilter], bool]
    index: str            # the index of cases (or case_diagnoses) it reads


def _cases_index(column: str) -> str:
    return _index_name(cases, "institution_id", column, "exam_time", "id")


# Most selective first: one patient's cases, a diagnosis code (thousands exist), cases
# lacking a doctor or a department (a data-quality defect, rare), one doctor, one
# department, then the low-cardinality labels.
DRIVERS: tuple[_Driver, ...] = (
    _Driver(lambda f: f.patient_id is not None, _cases_index("patient_id")),
    _Driver(lambda f: f.diagnosis_code is not None,
            _index_name(case_diagnoses, "institution_id", "code", "exam_time", "case_id")),
    _Driver(lambda f: "doctor" in f.missing, _cases_index("doctor_id")),
    _Driver(lambda f: "department" in f.missing, _cases_index("department_id")),
    _Driver(lambda f: f.doctor_id is not None, _cases_index("doctor_id")),
    _Driver(lambda f: f.department_id is not None, _cases_index("department_id")),
    _Driver(lambda f: f.exam_type is not None, _cases_index("exam_type")),
    _Driver(lambda f: f.modality is not None, _cases_index("modality")),
    _Driver(lambda f: f.quality_label is not None, _cases_index("quality_label")),
    _Driver(lambda f: f.annotation_status is not None, _cases_index("annotation_status")),
)
TIME_INDEX = _index_name(cases, "institution_id", "exam_time", "id")
DIAGNOSIS_INDEX = DRIVERS[1].index


def driving_index(f: CaseFilter) -> str:
    """The index a search reads its rows from."""
    return next((d.index for d in DRIVERS if d.applies(f)), TIME_INDEX)


# --- the statement -----------------------------------------------------------------------

SUMMARY_COLUMNS = (cases.c.id, cases.c.patient_id, cases.c.exam_type, cases.c.modality, cases.c.exam_time,
                   cases.c.department_id, cases.c.doctor_id, cases.c.status, cases.c.annotation_status,
                   cases.c.quality_label, cases.c.title, cases.c.diagnosis_codes, cases.c.version)


def search_statement(f: CaseFilter, limit: int, after: Keyset | None) -> sa.Select:
    """The SELECT of one page: at most ``limit`` rows strictly after ``after`` in search
    order, with the summary columns plus ``sort_time``/``sort_id`` (the keyset of the row,
    read from the driving index). Assumes ``f`` is valid (``search_cases`` checks it)."""
    index = driving_index(f)
    by_diagnosis = index == DIAGNOSIS_INDEX
    driver = case_diagnoses if by_diagnosis else cases
    sort_time = case_diagnoses.c.exam_time if by_diagnosis else cases.c.exam_time
    sort_id = case_diagnoses.c.case_id if by_diagnosis else cases.c.id

    source = case_diagnoses.join(cases, cases.c.id == case_diagnoses.c.case_id) if by_diagnosis else cases
    statement = sa.select(*SUMMARY_COLUMNS, sort_time.label("sort_time"), sort_id.label("sort_id")).select_from(source)
    for dialect in _HINT_DIALECTS:
        statement = statement.with_hint(driver, f"FORCE INDEX ({index})", dialect)

    conditions = [driver.c.institution_id == f.institution_id, *_case_conditions(f, index)]
    if by_diagnosis:
        conditions += [cases.c.institution_id == f.institution_id, case_diagnoses.c.code == f.diagnosis_code]
    conditions += _time_conditions(f, sort_time)
    if after is not None:
        conditions.append(_after(sort_time, sort_id, after))
    return statement.where(*conditions).order_by(sort_time.desc(), sort_id.desc()).limit(limit)


def _after(sort_time: sa.ColumnElement, sort_id: sa.ColumnElement, after: Keyset) -> sa.ColumnElement[bool]:
    """Rows strictly older than the keyset, in the OR form MariaDB's range optimizer reads
    as two ranges of the driving index (the row-constructor form it cannot)."""
    return sa.or_(sort_time < after.exam_time, sa.and_(sort_time == after.exam_time, sort_id < after.id))


def _time_conditions(f: CaseFilter, sort_time: sa.ColumnElement) -> list[sa.ColumnElement[bool]]:
    conditions = []
    if f.time_from is not None:
        conditions.append(sort_time >= f.time_from)
    if f.time_to is not None:
        conditions.append(sort_time < f.time_to)
    return conditions


_EQUALITY_COLUMNS = ("patient_id", "exam_type", "modality", "annotation_status", "doctor_id", "department_id",
                     "quality_label")


def _case_conditions(f: CaseFilter, index: str) -> list[sa.ColumnElement[bool]]:
    """Every filter on ``cases`` itself (the driving one included: it is the index's
    second column, so it narrows the range rather than being checked row by row)."""
    conditions: list[sa.ColumnElement[bool]] = [
        cases.c[name] == getattr(f, name) for name in _EQUALITY_COLUMNS if getattr(f, name) is not None]
    if f.diagnosis_code is not None and index != DIAGNOSIS_INDEX:
        conditions.append(_has_diagnosis(f.diagnosis_code))
    if f.title_contains:
        conditions.append(cases.c.title.contains(f.title_contains, autoescape=True))
    if not f.include_deleted:
        conditions.append(cases.c.deleted_at.is_(None))
    conditions += _missing_conditions(f.missing)
    return conditions


def filter_conditions(f: CaseFilter) -> list[sa.ColumnElement[bool]]:
    """Every condition of a filter on ``cases`` alone (no driving index, no order): for bulk
    jobs, which walk the matching cases in id order."""
    return [cases.c.institution_id == f.institution_id, *_case_conditions(f, ""), *_time_conditions(f, cases.c.exam_time)]


def _has_diagnosis(code: str) -> sa.ColumnElement[bool]:
    """A primary-key lookup on ``case_diagnoses`` for each row read."""
    return sa.exists().where(case_diagnoses.c.case_id == cases.c.id, case_diagnoses.c.code == code)


def _missing_conditions(missing: frozenset[str]) -> list[sa.ColumnElement[bool]]:
    conditions = []
    if "department" in missing:
        conditions.append(cases.c.department_id.is_(None))
    if "doctor" in missing:
        conditions.append(cases.c.doctor_id.is_(None))
    if "title" in missing:
        conditions.append(cases.c.title == "")
    if "diagnosis" in missing:
        conditions.append(~sa.exists().where(case_diagnoses.c.case_id == cases.c.id))
    return conditions


# --- validation and cursors --------------------------------------------------------------

def check_filter(f: CaseFilter) -> None:
    """422 for a filter that cannot mean anything: a time without a zone, a reversed or
    empty time range, an unknown missing-field name."""
    errors = [FieldError(f"query.{name}", "must include a time zone", "naive_datetime")
              for name in ("time_from", "time_to") if _is_naive(getattr(f, name))]
    if not errors and f.time_from is not None and f.time_to is not None and f.time_from >= f.time_to:
        errors.append(FieldError("query.time_to", "must be later than time_from", "reversed_range"))
    unknown = sorted(set(f.missing) - set(MISSING_FIELDS))
    if unknown:
        errors.append(FieldError("query.missing", f"must be among {', '.join(MISSING_FIELDS)}", "unknown_field"))
    if errors:
        raise validation_failed(errors)


def _is_naive(value: datetime | None) -> bool:
    return value is not None and value.tzinfo is None


def check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise validation_failed([FieldError("query.limit", f"must be between 1 and {MAX_PAGE_SIZE}", "out_of_range")])


def encode_keyset(keyset: Keyset) -> str:
    return encode_cursor([keyset.exam_time.isoformat(), keyset.id])


def decode_keyset(cursor: str) -> Keyset:
    """The position a cursor holds; 400 ``invalid-cursor`` for anything ``encode_keyset``
    did not make (including a cursor whose time does not parse or has no zone)."""
    exam_time, case_id = decode_cursor(cursor, 2)
    if not isinstance(exam_time, str) or not isinstance(case_id, str) or not 0 < len(case_id) <= 26:
        raise _invalid_cursor()
    try:
        parsed = datetime.fromisoformat(exam_time)
    except ValueError:
        raise _invalid_cursor() from None
    if parsed.tzinfo is None:
        raise _invalid_cursor()
    return Keyset(parsed, case_id)


def _invalid_cursor():
    return bad_request("The cursor is not valid.", code="invalid-cursor")


# --- the use case ------------------------------------------------------------------------

async def search_cases(db: Database, f: CaseFilter, limit: int, cursor: str | None
                       ) -> tuple[list[CaseSummary], str | None]:
    """One page of the institution's cases matching ``f``, newest first, and the cursor of
    the next page (None on the last one)."""
    check_filter(f)
    check_limit(limit)
    after = decode_keyset(cursor) if cursor else None
    async with db.connect() as conn:
        rows = (await conn.execute(search_statement(f, limit + 1, after))).all()
    page = rows[:limit]
    next_cursor = encode_keyset(Keyset(page[-1].sort_time, page[-1].sort_id)) if len(rows) > limit else None
    return [_summary(row) for row in page], next_cursor


def _summary(row: sa.Row) -> CaseSummary:
    values = row._mapping
    return CaseSummary(**{c.name: values[c.name] for c in SUMMARY_COLUMNS if c.name != "diagnosis_codes"},
                       diagnosis_codes=_codes(values["diagnosis_codes"]))


def _codes(stored: Sequence[str] | None) -> list[str]:
    return [str(code) for code in stored or ()]
