"""Exporting a case search to Excel: every matching case, nothing else, and a clear refusal
when the result is too large to answer at once."""

from __future__ import annotations

import io
import zipfile

import pytest

from medflow.errors import Problem
from medflow.records.export import export_cases
from medflow.records.search import CaseFilter
from records_support import actor, case, patient

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _sheet_text(content: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(content)) as book:
        names = book.namelist()
        shared = book.read("xl/sharedStrings.xml").decode() if "xl/sharedStrings.xml" in names else ""
        return shared + book.read("xl/worksheets/sheet1.xml").decode()


async def test_an_export_holds_every_matching_case_and_only_those(platform):
    doctor = await actor(platform, "MFGH", "doc.x", "doctor")
    other = await actor(platform, "RRH", "doc.y", "doctor")
    p = await patient(platform, doctor, "X-1")
    for title in ("Kidney panel A", "Kidney panel B"):
        await case(platform, doctor, p["id"], title=title)
    await case(platform, doctor, p["id"], title="Chest film", modality="CR", exam_type="chest_xray")
    await case(platform, other, (await patient(platform, other, "Y-1"))["id"], title="Kidney panel elsewhere")

    response = await platform.get("/api/case_search/cases/export", headers=doctor.headers, params={"modality": "LAB"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == XLSX
    assert "cases.xlsx" in response.headers["content-disposition"]
    text = _sheet_text(response.content)
    assert "Kidney panel A" in text and "Kidney panel B" in text
    assert "Chest film" not in text and "elsewhere" not in text


async def test_formulas_in_titles_are_written_as_text(platform):
    doctor = await actor(platform, "MFGH", "doc.z", "doctor")
    await case(platform, doctor, (await patient(platform, doctor, "X-2"))["id"], title="=HYPERLINK(\"http://x\")")
    response = await platform.get("/api/case_search/cases/export", headers=doctor.headers)
    assert "<f>" not in _sheet_text(response.content)  # no cell became a formula


async def test_a_patient_cannot_export_and_bad_filters_are_refused(platform):
    patient_user = await actor(platform, "MFGH", "pat.z", "patient")
    doctor = await actor(platform, "MFGH", "doc.w", "doctor")
    assert (await platform.get("/api/case_search/cases/export", headers=patient_user.headers)).status_code == 403
    bad = await platform.get("/api/case_search/cases/export", headers=doctor.headers, params={"limit": 5})
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == "query.limit"


async def test_above_the_configured_row_count_the_export_is_refused(platform):
    doctor = await actor(platform, "MFGH", "doc.v", "doctor")
    p = await patient(platform, doctor, "X-3")
    for n in range(3):
        await case(platform, doctor, p["id"], title=f"Exam {n}")
    with pytest.raises(Problem) as caught:
        await export_cases(platform.services.db, CaseFilter(institution_id=doctor.institution_id), max_rows=2)
    assert caught.value.status == 422 and caught.value.code == "export-too-large"
    path, rows = await export_cases(platform.services.db, CaseFilter(institution_id=doctor.institution_id), max_rows=3)
    assert rows == 3 and path.exists()
    path.unlink()
