"""Clinical records end to end over HTTP, on embedded and real adapters: patients and the
master patient index, cases with items and versions, annotations, release to the patient,
quality labels, and every way to get it wrong."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from medflow.cache.aside import cache_aside
from medflow.db.schema import cases, patient_identifiers, persons, record_versions
from records_support import actor, case, institution, patient, problem as _problem

LAB = {"panel": "urinalysis", "analytes": [
    {"code": "PRO", "name": "Protein", "value": 0.3, "unit": "g/L", "reference_low": 0, "reference_high": 0.15, "flag": "high"}]}


async def _count(platform, table) -> int:
    async with platform.services.db.connect() as conn:
        return (await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one()



@pytest.fixture
async def team(platform):
    doctor = await actor(platform, "MFGH", "doc.a", "doctor", "NEPH")
    admin = await actor(platform, "MFGH", "adm.a", "admin")
    other = await actor(platform, "RRH", "doc.b", "doctor")
    return doctor, admin, other


async def test_a_person_known_at_two_hospitals_resolves_to_one_person(platform, team):
    doctor, admin, other = team
    national = {"system": "national-id:cn", "value": "110101196804120017"}
    here = await patient(platform, doctor, "A-1", "Zhang Wei", identifiers=[national])
    there = await patient(platform, other, "B-77", "Zhang Wei", identifiers=[national])
    assert here["person_id"] == there["person_id"]
    systems = {i["system"] for i in there["identifiers"]}
    assert {"national-id:cn", "mrn:MFGH", "mrn:RRH"} <= systems


async def test_merging_two_persons_keeps_every_identifier(platform, team):
    doctor, admin, other = team
    first = await patient(platform, doctor, "A-2", "Li Na")
    elsewhere = await patient(platform, other, "B-2", "Li Na", identifiers=[{"system": "insurance:x", "value": "I-9"}])
    persons_before = await _count(platform, persons)
    response = await platform.post(f"/api/patients/patients/{first['id']}/merge", headers=admin.headers,
                                   json={"identifier": {"system": "mrn:RRH", "value": "B-2"}})
    assert response.status_code == 200, response.text
    merged = response.json()
    assert merged["person_id"] == first["person_id"] and merged["merged_person_id"] == elsewhere["person_id"]
    assert {(i["system"], i["value"]) for i in merged["identifiers"]} >= {("mrn:MFGH", "A-2"), ("mrn:RRH", "B-2"), ("insurance:x", "I-9")}
    assert await _count(platform, persons) == persons_before - 1
    again = await platform.post(f"/api/patients/patients/{first['id']}/merge", headers=admin.headers,
                                json={"identifier": {"system": "mrn:RRH", "value": "B-2"}})
    _problem(again, 409, "already-merged")
    _problem(await platform.post(f"/api/patients/patients/{first['id']}/merge", headers=doctor.headers,
                                 json={"identifier": {"system": "mrn:RRH", "value": "B-2"}}), 403, "forbidden")


async def test_identifiers_of_two_persons_at_registration_are_a_conflict(platform, team):
    doctor, _, other = team
    await patient(platform, doctor, "A-3", identifiers=[{"system": "passport", "value": "P1"}])
    await patient(platform, other, "B-3", identifiers=[{"system": "passport", "value": "P2"}])
    before = await _count(platform, patient_identifiers)
    response = await platform.post("/api/patients/patients", headers=doctor.headers, json={
        "mrn": "A-4", "display_name": "X", "identifiers": [{"system": "passport", "value": "P1"},
                                                          {"system": "mrn:RRH", "value": "B-3"}]})
    _problem(response, 409, "identity-conflict")
    assert await _count(platform, patient_identifiers) == before
    _problem(await platform.post("/api/patients/patients", headers=doctor.headers,
                                 json={"mrn": "A-3", "display_name": "Dup"}), 409, "mrn-taken")


async def test_every_edit_keeps_the_previous_version(platform, team):
    doctor, _, _ = team
    p = await patient(platform, doctor, "A-5")
    c = await case(platform, doctor, p["id"], diagnosis_codes=["N18.3"])
    edited = await platform.patch(f"/api/cases/cases/{c['id']}", headers=doctor.headers,
                                  json={"version": 1, "reason": "typo in title", "title": "Urinalysis, morning"})
    assert edited.status_code == 200 and edited.json()["version"] == 2
    again = await platform.patch(f"/api/cases/cases/{c['id']}", headers=doctor.headers,
                                 json={"version": 2, "reason": "coded", "diagnosis_codes": ["N18.4"]})
    assert again.json()["version"] == 3
    history = (await platform.get(f"/api/cases/cases/{c['id']}/history", headers=doctor.headers)).json()["items"]
    assert [h["version"] for h in history] == [2, 1]
    assert history[1]["old_values"] == {"title": "Urinalysis"} and history[1]["reason"] == "typo in title"
    assert history[1]["changed_by"] == doctor.user_id
    v1 = (await platform.get(f"/api/cases/cases/{c['id']}/versions/1", headers=doctor.headers)).json()
    assert v1["values"]["title"] == "Urinalysis" and v1["values"]["diagnosis_codes"] == ["N18.3"]
    v2 = (await platform.get(f"/api/cases/cases/{c['id']}/versions/2", headers=doctor.headers)).json()
    assert v2["values"]["title"] == "Urinalysis, morning" and v2["values"]["diagnosis_codes"] == ["N18.3"]
    _problem(await platform.get(f"/api/cases/cases/{c['id']}/versions/9", headers=doctor.headers), 404, "not-found")


async def test_a_stale_version_is_409_and_changes_nothing(platform, team):
    doctor, _, _ = team
    c = await case(platform, doctor, (await patient(platform, doctor, "A-6"))["id"])
    await platform.patch(f"/api/cases/cases/{c['id']}", headers=doctor.headers, json={"version": 1, "title": "New"})
    versions = await _count(platform, record_versions)
    _problem(await platform.patch(f"/api/cases/cases/{c['id']}", headers=doctor.headers,
                                  json={"version": 1, "title": "Lost update"}), 409, "version-conflict")
    assert await _count(platform, record_versions) == versions
    current = (await platform.get(f"/api/cases/cases/{c['id']}", headers=doctor.headers)).json()
    assert current["title"] == "New"


async def test_items_of_each_kind_are_checked_and_versioned(platform, team):
    doctor, _, _ = team
    c = await case(platform, doctor, (await patient(platform, doctor, "A-7"))["id"])
    lab = await platform.post(f"/api/cases/cases/{c['id']}/items", headers=doctor.headers,
                              json={"kind": "lab_panel", "title": "Urinalysis", "content": LAB})
    assert lab.status_code == 201, lab.text
    vitals = await platform.post(f"/api/cases/cases/{c['id']}/items", headers=doctor.headers,
                                 json={"kind": "vitals", "content": {"heart_rate_bpm": 70, "systolic_mmhg": 120}})
    assert vitals.status_code == 201
    bad = await platform.post(f"/api/cases/cases/{c['id']}/items", headers=doctor.headers, json={
        "kind": "lab_panel", "content": {"panel": "urinalysis", "analytes": [
            {"code": "PRO", "name": "Protein", "value": 1, "reference_low": 5, "reference_high": 1}]}})
    assert _problem(bad, 422, "validation-failed")["errors"][0]["loc"].startswith("body.content.analytes.0")
    _problem(await platform.post(f"/api/cases/cases/{c['id']}/items", headers=doctor.headers,
                                 json={"kind": "vitals", "content": {"heart_rate_bpm": -3}}), 422, "validation-failed")
    item = lab.json()
    changed = await platform.patch(f"/api/cases/cases/{c['id']}/items/{item['id']}", headers=doctor.headers,
                                   json={"version": 1, "reason": "corrected unit", "content": {**LAB, "specimen": "urine"}})
    assert changed.status_code == 200 and changed.json()["version"] == 2
    history = (await platform.get(f"/api/cases/cases/{c['id']}/items/{item['id']}/history", headers=doctor.headers)).json()
    assert history["items"][0]["old_values"]["content"] == LAB
    deleted = await platform.delete(f"/api/cases/cases/{c['id']}/items/{item['id']}", headers=doctor.headers,
                                    params={"version": 2, "reason": "wrong patient"})
    assert deleted.status_code == 204
    detail = (await platform.get(f"/api/cases/cases/{c['id']}", headers=doctor.headers)).json()
    assert [i["kind"] for i in detail["items"]] == ["vitals"]


async def test_annotations_labels_and_regions_with_history(platform, team):
    doctor, _, _ = team
    c = await case(platform, doctor, (await patient(platform, doctor, "A-8"))["id"], modality="CR", exam_type="chest_xray")
    image = (await platform.post(f"/api/cases/cases/{c['id']}/items", headers=doctor.headers, json={
        "kind": "imaging_study", "content": {"study_instance_uid": "1.2.826.0.1.3680043.8.498.1"}})).json()
    label = await platform.post(f"/api/cases/cases/{c['id']}/annotations", headers=doctor.headers,
                                json={"kind": "label", "label": "cardiomegaly"})
    region = await platform.post(f"/api/cases/cases/{c['id']}/annotations", headers=doctor.headers, json={
        "kind": "region", "label": "nodule", "item_id": image["id"], "shape": "rect", "coordinates": [[10, 20], [40, 60]]})
    assert label.status_code == 201 and region.status_code == 201, region.text
    case_now = (await platform.get(f"/api/cases/cases/{c['id']}", headers=doctor.headers)).json()
    assert case_now["annotation_status"] == "in_progress"
    _problem(await platform.post(f"/api/cases/cases/{c['id']}/annotations", headers=doctor.headers,
                                 json={"kind": "region", "label": "x"}), 422, "validation-failed")
    reviewed = await platform.patch(f"/api/cases/cases/{c['id']}/annotations/{region.json()['id']}", headers=doctor.headers,
                                    json={"version": 1, "status": "reviewed", "coordinates": [[12, 20], [40, 61]]})
    assert reviewed.json()["status"] == "reviewed" and reviewed.json()["version"] == 2
    history = (await platform.get(f"/api/cases/cases/{c['id']}/annotations/{region.json()['id']}/history",
                                  headers=doctor.headers)).json()["items"]
    assert history[0]["old_values"] == {"status": "draft", "coordinates": [[10.0, 20.0], [40.0, 60.0]]}
    listed = (await platform.get(f"/api/cases/cases/{c['id']}/annotations", headers=doctor.headers)).json()["items"]
    assert {a["label"] for a in listed} == {"cardiomegaly", "nodule"}


async def test_a_patient_sees_only_what_was_released_to_them(platform, team):
    doctor, _, _ = team
    me = await actor(platform, "MFGH", "pat.a", "patient")
    mine = await patient(platform, doctor, "A-9", "Me", user_id=me.user_id)
    other = await patient(platform, doctor, "A-10", "Someone else")
    released = await case(platform, doctor, mine["id"], title="Released one")
    await case(platform, doctor, mine["id"], title="Not released")
    theirs = await case(platform, doctor, other["id"], title="Theirs")
    for c in (released, theirs):
        r = await platform.post(f"/api/cases/cases/{c['id']}/release", headers=doctor.headers,
                                json={"version": 1, "summary": "All fine."})
        assert r.status_code == 200, r.text
    page = (await platform.get("/api/my_records/cases", headers=me.headers)).json()
    assert [c["title"] for c in page["items"]] == ["Released one"]
    assert set(page["items"][0]) == {"id", "exam_type", "modality", "exam_time", "title", "released_summary", "released_at"}
    _problem(await platform.get(f"/api/cases/cases/{theirs['id']}", headers=me.headers), 403, "forbidden")
    _problem(await platform.get(f"/api/patients/patients/{mine['id']}", headers=me.headers), 403, "forbidden")


async def test_released_summaries_are_served_from_cache_and_every_change_shows_at_once(platform, team):
    doctor, _, _ = team
    me = await actor(platform, "MFGH", "pat.c", "patient")
    mine = await patient(platform, doctor, "A-21", "Me again", user_id=me.user_id)
    first = await case(platform, doctor, mine["id"], title="First result")
    assert (await platform.post(f"/api/cases/cases/{first['id']}/release", headers=doctor.headers,
                                json={"version": 1, "summary": "Normal."})).status_code == 200
    stats = lambda: cache_aside(platform.services).stats().get("released_summaries", {"hits": 0, "loads": 0})  # noqa: E731
    before = stats()
    for _ in range(5):
        page = (await platform.get("/api/my_records/cases", headers=me.headers)).json()
        assert [c["title"] for c in page["items"]] == ["First result"]
    after = stats()
    assert after["loads"] - before["loads"] == 1 and after["hits"] - before["hits"] == 4

    second = await case(platform, doctor, mine["id"], title="Second result")
    assert (await platform.post(f"/api/cases/cases/{second['id']}/release", headers=doctor.headers,
                                json={"version": 1, "summary": "Also normal."})).status_code == 200
    page = (await platform.get("/api/my_records/cases", headers=me.headers)).json()
    assert {c["title"] for c in page["items"]} == {"First result", "Second result"}
    removed = await platform.delete(f"/api/cases/cases/{first['id']}", headers=doctor.headers,
                                    params={"version": 2, "reason": "entered in error"})
    assert removed.status_code == 204, removed.text
    page = (await platform.get("/api/my_records/cases", headers=me.headers)).json()
    assert [c["title"] for c in page["items"]] == ["Second result"]


async def test_admins_label_quality_but_cannot_edit_clinical_content(platform, team):
    doctor, admin, _ = team
    c = await case(platform, doctor, (await patient(platform, doctor, "A-11"))["id"])
    labelled = await platform.put(f"/api/cases/cases/{c['id']}/quality", headers=admin.headers,
                                  json={"version": 1, "label": "incomplete", "reason": "no department"})
    assert labelled.status_code == 200 and labelled.json()["quality_label"] == "incomplete"
    _problem(await platform.patch(f"/api/cases/cases/{c['id']}", headers=admin.headers,
                                  json={"version": 2, "title": "x"}), 403, "forbidden")
    assert (await platform.get(f"/api/cases/cases/{c['id']}", headers=admin.headers)).status_code == 200


async def test_another_institutions_records_are_not_found_and_unchanged(platform, team):
    doctor, _, other = team
    p = await patient(platform, doctor, "A-12")
    c = await case(platform, doctor, p["id"])
    for method, path, body in [
        ("GET", f"/api/cases/cases/{c['id']}", None),
        ("PATCH", f"/api/cases/cases/{c['id']}", {"version": 1, "title": "hijack"}),
        ("POST", f"/api/cases/cases/{c['id']}/items", {"kind": "vitals", "content": {"heart_rate_bpm": 60}}),
        ("POST", f"/api/cases/cases/{c['id']}/annotations", {"kind": "label", "label": "x"}),
        ("GET", f"/api/patients/patients/{p['id']}", None),
        ("GET", f"/api/patients/patients/{p['id']}/overview", None),
    ]:
        response = await platform.request(method, path, headers=other.headers, json=body)
        _problem(response, 404, "not-found")
    unchanged = (await platform.get(f"/api/cases/cases/{c['id']}", headers=doctor.headers)).json()
    assert unchanged["version"] == 1 and unchanged["items"] == []
    _problem(await platform.post("/api/cases/cases", headers=other.headers, json={
        "patient_id": p["id"], "exam_type": "urinalysis", "modality": "LAB",
        "exam_time": "2026-11-01T08:30:00+08:00"}), 422, "validation-failed")


async def test_bad_case_input_is_refused_with_field_errors(platform, team):
    doctor, _, _ = team
    p = await patient(platform, doctor, "A-13")
    before = await _count(platform, cases)
    body = {"patient_id": p["id"], "exam_type": "urinalysis", "modality": "LAB", "exam_time": "2026-11-01T08:30:00"}
    problem = _problem(await platform.post("/api/cases/cases", headers=doctor.headers, json=body), 422, "validation-failed")
    assert problem["errors"][0]["loc"] == "body.exam_time"  # a time without a zone is ambiguous
    _problem(await platform.post("/api/cases/cases", headers=doctor.headers,
                                 json={**body, "exam_time": "2026-11-01T08:30:00Z", "severity": 3}), 422, "validation-failed")
    _problem(await platform.post("/api/cases/cases", headers=doctor.headers,
                                 json={**body, "exam_time": "2026-11-01T08:30:00Z", "department_id": "01J0000000000000000000DEPT"}),
             422, "validation-failed")
    assert await _count(platform, cases) == before


async def test_patient_360_view_pages_exams_with_items_and_latest_results(platform, team):
    doctor, _, _ = team
    p = await patient(platform, doctor, "A-14")
    made = []
    for day in range(1, 6):
        c = await case(platform, doctor, p["id"], exam_time=f"2026-10-0{day}T08:00:00Z", title=f"Exam {day}")
        await platform.post(f"/api/cases/cases/{c['id']}/items", headers=doctor.headers,
                            json={"kind": "lab_panel", "content": LAB})
        made.append(c["id"])
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await platform.get(f"/api/patients/patients/{p['id']}/overview", headers=doctor.headers, params=params)).json()
        seen += [c["title"] for c in page["cases"]]
        assert all(len(c["items"]) == 1 for c in page["cases"])
        assert page["latest_results"]["lab_panel"]["case_id"] == made[-1]
        assert {i["system"] for i in page["identifiers"]} == {"mrn:MFGH"}
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [f"Exam {d}" for d in range(5, 0, -1)]
    _problem(await platform.get(f"/api/patients/patients/{p['id']}/overview", headers=doctor.headers,
                                params={"cursor": "garbage"}), 400, "invalid-cursor")


async def test_soft_deleted_cases_leave_views_but_keep_history(platform, team):
    doctor, _, _ = team
    c = await case(platform, doctor, (await patient(platform, doctor, "A-15"))["id"])
    _problem(await platform.delete(f"/api/cases/cases/{c['id']}", headers=doctor.headers, params={"version": 7}),
             409, "version-conflict")
    assert (await platform.delete(f"/api/cases/cases/{c['id']}", headers=doctor.headers,
                                  params={"version": 1, "reason": "duplicate"})).status_code == 204
    _problem(await platform.get(f"/api/cases/cases/{c['id']}", headers=doctor.headers), 404, "not-found")
    history = (await platform.get(f"/api/cases/cases/{c['id']}/history", headers=doctor.headers)).json()["items"]
    assert history[0]["reason"] == "duplicate" and history[0]["old_values"] == {"deleted_at": None}


async def test_reads_and_changes_of_patient_data_are_audited(platform, team):
    doctor, _, _ = team
    p = await patient(platform, doctor, "A-16")
    await platform.get(f"/api/patients/patients/{p['id']}", headers=doctor.headers)
    from medflow.db.schema import audit_log
    import asyncio
    for _ in range(100):
        async with platform.services.db.connect() as conn:
            actions = set((await conn.execute(sa.select(audit_log.c.action).where(
                audit_log.c.resource_id == p["id"]))).scalars())
        if {"patient.registered", "patient.read"} <= actions:
            break
        await asyncio.sleep(0.1)
    assert {"patient.registered", "patient.read"} <= actions
