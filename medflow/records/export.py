"""Exporting a search result to Excel (.xlsx) in constant memory.

Rows are read page by page with the keyset search and written with XlsxWriter's
constant-memory mode (each row goes to disk as soon as it is written); the workbook is a
temporary file the caller streams and removes. Above ``max_rows`` the export is refused
here; the bulk-jobs issue turns such exports into jobs.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import fields
from datetime import datetime
from pathlib import Path

import xlsxwriter

from medflow.db.engine import Database
from medflow.errors import Problem
from medflow.pagination import MAX_PAGE_SIZE
from medflow.records.search import CaseFilter, CaseSummary, search_cases

COLUMNS = [f.name for f in fields(CaseSummary)]


def too_many_rows(max_rows: int) -> Problem:
    return Problem(422, "export-too-large",
                   f"The search matches more than {max_rows} cases; narrow it (large exports become jobs).")


def cell_value(value: object) -> object:
    """A value as a spreadsheet cell: times as ISO text, lists joined."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return value


def open_workbook(path: Path) -> xlsxwriter.Workbook:
    """A workbook written row by row to disk (constant memory); text never becomes a formula or link."""
    return xlsxwriter.Workbook(str(path), {"constant_memory": True, "strings_to_formulas": False,
                                           "strings_to_urls": False})


async def export_cases(db: Database, f: CaseFilter, max_rows: int) -> tuple[Path, int]:
    """The workbook's path and its row count; the file is the caller's to delete."""
    fd, name = tempfile.mkstemp(prefix="medflow-export-", suffix=".xlsx")
    os.close(fd)
    path = Path(name)
    workbook = open_workbook(path)
    try:
        sheet = workbook.add_worksheet("cases")
        header = workbook.add_format({"bold": True})
        sheet.write_row(0, 0, COLUMNS, header)
        written, cursor = 0, None
        while True:
            page, cursor = await search_cases(db, f, MAX_PAGE_SIZE, cursor)
            if written + len(page) > max_rows:
                raise too_many_rows(max_rows)
            for case in page:
                written += 1
                sheet.write_row(written, 0, [cell_value(getattr(case, c)) for c in COLUMNS])
            if cursor is None:
                break
        workbook.close()
        return path, written
    except BaseException:
        try:
            workbook.close()
        finally:
            path.unlink(missing_ok=True)
        raise
