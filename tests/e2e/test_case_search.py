"""Case search and data supervision over HTTP (the ``case_search`` function), on embedded
and real adapters: filters, keyset pages, institution scoping, roles, and every bad input
answered with problem+json."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from medflow.pagination import encode_cursor
from records_support import Actor, actor, case, institution, patient, problem as _problem

SEARCH = "/api/case_search/cases"
SUPERVISION = "/api/case_search/supervision"


@dataclass
class Ward:
    """A doctor's and an admin's view of one institution's cases, and a doctor elsewhere."""

    doctor: Actor
    colleague: Actor
    admin: Actor
    outsider: Actor
    patients: list[dict]
    cases: dict[str, dict]          # by a readable name
    radiology: str                  # department id



async def _search(platform, who: Actor, path: str = SEARCH, **params) -> list[str]:
    """Ids of every case the search returns, walking the pages."""
    ids, cursor = [], None
    while True:
        response = await platform.get(path, headers=who.headers, params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        page = response.json()
        ids += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


@pytest.fixture
async def ward(platform) -> Ward:
    _, depts = await institution(platform, "MFGH")
    doctor = await actor(platform, "MFGH", "search.doc", "doctor", "RAD")
    colleague = await actor(platform, "MFGH", "search.doc2", "doctor", "CARD")
    admin = await actor(platform, "MFGH", "search.admin", "admin")
    outsider = await actor(platform, "RRH", "search.out", "doctor", "RAD")
    ann, bo = await patient(platform, doctor, "S-1", "Ann"), await patient(platform, doctor, "S-2", "Bo")
    made = {
        "ann chest ct": await case(platform, doctor, ann["id"], exam_type="imaging", modality="CT", title="Chest CT",
                                   exam_time="2026-10-01T09:00:00+08:00", department_id=depts["RAD"],
                                   doctor_id=doctor.user_id, diagnosis_codes=["J18.9"]),
        "ann urinalysis": await case(platform, doctor, ann["id"], exam_time="2026-10-03T09:00:00+08:00",
                                     doctor_id=colleague.user_id, diagnosis_codes=["N18.3", "I10"]),
        "bo knee mr": await case(platform, doctor, bo["id"], exam_type="imaging", modality="MR", title="Knee_MR 50%",
                                 exam_time="2026-10-03T09:00:00+08:00", department_id=depts["RAD"]),
        "bo untitled": await case(platform, doctor, bo["id"], title="", exam_time="2026-10-05T01:00:00Z",
                                  doctor_id=doctor.user_id, department_id=depts["CARD"]),
        "bo deleted": await case(platform, doctor, bo["id"], exam_time="2026-10-06T09:00:00+08:00",
                                 doctor_id=doctor.user_id),
    }
    deleted = await platform.delete(f"/api/cases/cases/{made['bo deleted']['id']}", headers=doctor.headers,
                                    params={"version": 1, "reason": "wrong patient"})
    assert deleted.status_code == 204
    labelled = await platform.put(f"/api/cases/cases/{made['ann chest ct']['id']}/quality", headers=admin.headers,
                                  json={"version": 1, "label": "incomplete", "reason": "no report"})
    assert labelled.status_code == 200, labelled.text
    annotated = await platform.patch(f"/api/cases/cases/{made['bo knee mr']['id']}", headers=doctor.headers,
                                     json={"version": 1, "annotation_status": "in_progress"})
    assert annotated.status_code == 200, annotated.text
    elsewhere_patient = await patient(platform, outsider, "S-1", "Ann elsewhere")
    await case(platform, outsider, elsewhere_patient["id"], exam_type="imaging", modality="CT", title="Chest CT",
               exam_time="2026-10-02T09:00:00+08:00", diagnosis_codes=["J18.9"])
    return Ward(doctor, colleague, admin, outsider, [ann, bo], made, depts["RAD"])


def _ids(ward: Ward, *names: str) -> list[str]:
    return [ward.cases[name]["id"] for name in names]


async def test_a_doctor_lists_the_institutions_cases_newest_first(platform, ward):
    found = await _search(platform, ward.doctor)
    # "bo knee mr" and "ann urinalysis" share an exam time: the larger id comes first
    tied = sorted(_ids(ward, "bo knee mr", "ann urinalysis"), reverse=True)
    assert found == [*_ids(ward, "bo untitled"), *tied, *_ids(ward, "ann chest ct")]


async def test_the_cursor_walks_every_case_once(platform, ward):
    everything = await _search(platform, ward.doctor)
    assert await _search(platform, ward.doctor, limit=1) == everything
    first = (await platform.get(SEARCH, headers=ward.doctor.headers, params={"limit": 3})).json()
    assert len(first["items"]) == 3 and first["next_cursor"]
    second = (await platform.get(SEARCH, headers=ward.doctor.headers,
                                 params={"limit": 3, "cursor": first["next_cursor"]})).json()
    assert [i["id"] for i in first["items"] + second["items"]] == everything and second["next_cursor"] is None


FILTERED = [
    ({"modality": "CT"}, ["ann chest ct"]),
    ({"exam_type": "imaging", "department_id": "RAD"}, ["bo knee mr", "ann chest ct"]),
    ({"diagnosis_code": "I10"}, ["ann urinalysis"]),
    ({"diagnosis_code": "J18.9", "quality_label": "incomplete"}, ["ann chest ct"]),
    ({"doctor_id": "doctor"}, ["bo untitled", "ann chest ct"]),
    ({"doctor_id": "colleague", "patient_id": 0}, ["ann urinalysis"]),
    ({"patient_id": 1}, ["bo untitled", "bo knee mr"]),
    ({"annotation_status": "in_progress"}, ["bo knee mr"]),
    ({"title_contains": "chest"}, ["ann chest ct"]),
    ({"title_contains": "_MR 50%"}, ["bo knee mr"]),
    # half-open [from, to), zones converted: 09:00+08:00 is 01:00Z
    ({"time_from": "2026-10-03T09:00:00+08:00", "time_to": "2026-10-05T01:00:00Z"}, ["bo knee mr", "ann urinalysis"]),
    ({"time_to": "2026-10-03T01:00:00Z"}, ["ann chest ct"]),
    ({"modality": "XR"}, []),
]


async def test_filters_combine_and_find_exactly_the_matching_cases(platform, ward):
    for params, expected in FILTERED:
        resolved = {key: _resolve(ward, key, value) for key, value in params.items()}
        found = await _search(platform, ward.doctor, **resolved)
        assert sorted(found) == sorted(_ids(ward, *expected)), params


def _resolve(ward: Ward, key: str, value):
    """Test-table shorthands: a role name for doctor_id, an index for patient_id, RAD."""
    if key == "doctor_id":
        return getattr(ward, value).user_id
    if key == "patient_id":
        return ward.patients[value]["id"]
    if key == "department_id":
        return ward.radiology
    return value


async def test_search_results_carry_each_cases_summary(platform, ward):
    page = (await platform.get(SEARCH, headers=ward.doctor.headers, params={"diagnosis_code": "J18.9"})).json()
    [item] = page["items"]
    assert item == {**{k: ward.cases["ann chest ct"][k] for k in item if k not in ("quality_label", "version")},
                    "quality_label": "incomplete", "version": 2}


async def test_soft_deleted_cases_leave_the_search(platform, ward):
    assert ward.cases["bo deleted"]["id"] not in await _search(platform, ward.doctor)
    assert ward.cases["bo deleted"]["id"] not in await _search(platform, ward.admin, SUPERVISION)
    assert ward.cases["bo deleted"]["id"] in await _search(platform, ward.admin, SUPERVISION, include_deleted="true")


async def test_admins_supervise_cases_lacking_a_field(platform, ward):
    for missing, expected in [("department", ["ann urinalysis"]), ("doctor", ["bo knee mr"]),
                              ("diagnosis", ["bo untitled", "bo knee mr"]), ("title", ["bo untitled"]),
                              ("doctor,diagnosis", ["bo knee mr"])]:
        assert await _search(platform, ward.admin, SUPERVISION, missing=missing) == _ids(ward, *expected), missing


async def test_admins_search_every_doctors_cases_by_quality_label(platform, ward):
    assert await _search(platform, ward.admin, SUPERVISION, quality_label="incomplete") == _ids(ward, "ann chest ct")
    assert len(await _search(platform, ward.admin)) == 4


async def test_another_institutions_cases_are_invisible(platform, ward):
    theirs = await _search(platform, ward.outsider)
    assert len(theirs) == 1 and not set(theirs) & {c["id"] for c in ward.cases.values()}
    assert await _search(platform, ward.outsider, patient_id=ward.patients[0]["id"]) == []
    assert theirs[0] not in await _search(platform, ward.doctor, diagnosis_code="J18.9")


async def test_patients_may_not_search_and_doctors_may_not_supervise(platform, ward):
    patient_account = await actor(platform, "MFGH", "search.patient", "patient")
    _problem(await platform.get(SEARCH, headers=patient_account.headers), 403, "forbidden")
    _problem(await platform.get(SUPERVISION, headers=patient_account.headers), 403, "forbidden")
    _problem(await platform.get(SUPERVISION, headers=ward.doctor.headers), 403, "forbidden")
    _problem(await platform.get(SEARCH), 401, "unauthenticated")


BAD_SEARCHES = {
    "unknown filter": (SEARCH, {"colour": "red"}, 422, "validation-failed", "query.colour"),
    "supervision filter on the doctors' search": (SEARCH, {"missing": "doctor"}, 422, "validation-failed", "query.missing"),
    "unknown missing field": (SUPERVISION, {"missing": "doctor,height"}, 422, "validation-failed", "query.missing"),
    "page size 0": (SEARCH, {"limit": 0}, 422, "validation-failed", "query.limit"),
    "page size 201": (SEARCH, {"limit": 201}, 422, "validation-failed", "query.limit"),
    "page size not a number": (SEARCH, {"limit": "ten"}, 422, "validation-failed", "query.limit"),
    "reversed time range": (SEARCH, {"time_from": "2026-10-05T00:00:00Z", "time_to": "2026-10-01T00:00:00Z"},
                            422, "validation-failed", "query.time_to"),
    "empty time range": (SUPERVISION, {"time_from": "2026-10-05T00:00:00Z", "time_to": "2026-10-05T08:00:00+08:00"},
                         422, "validation-failed", "query.time_to"),
    "time without a zone": (SEARCH, {"time_from": "2026-10-05T00:00:00"}, 422, "validation-failed", "query.time_from"),
    "malformed patient id": (SEARCH, {"patient_id": "x' OR 1=1"}, 422, "validation-failed", "query.patient_id"),
    "unknown quality label": (SEARCH, {"quality_label": "great"}, 422, "validation-failed", "query.quality_label"),
    "garbage cursor": (SEARCH, {"cursor": "not a cursor!"}, 400, "invalid-cursor", None),
    "cursor with a forged time": (SEARCH, {"cursor": encode_cursor(["soon", "01JD0000000000000000000000"])},
                                  400, "invalid-cursor", None),
    "cursor of another shape": (SUPERVISION, {"cursor": encode_cursor(["Alice", "01JD0000000000000000000000", 3])},
                                400, "invalid-cursor", None),
}


async def test_bad_input_is_refused_with_problem_json(platform, ward):
    for name, (path, params, status, code, field) in BAD_SEARCHES.items():
        body = _problem(await platform.get(path, headers=ward.admin.headers, params=params), status, code)
        if field:
            assert field in [e["loc"] for e in body["errors"]], name
        assert "SELECT" not in body["detail"] and "Traceback" not in body["detail"], name
