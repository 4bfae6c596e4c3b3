"""Bulk jobs through the API on the embedded and the real platform: submit (202 + status
URL, Idempotency-Key), run to completion with exact counts, cancel, deadline, permissions,
bad input, exports as backup batches, archive moving objects, large search exports."""

from __future__ import annotations

import io
import json
import hashlib
import zipfile

import httpx
import sqlalchemy as sa
from ulid import ULID

from medflow.db.schema import audit_log, case_archive, cases, jobs, record_versions
from imaging_support import fetch_signed, instance
from jobs_support import insert_cases, wait_for_job
from records_support import actor, case, patient


def _tune(platform, **settings) -> None:
    s = platform.services
    s.settings = s.settings.model_copy(update=settings)


async def _deleted(platform, ids) -> int:
    async with platform.services.db.connect() as conn:
        return (await conn.execute(sa.select(sa.func.count()).select_from(cases)
                                   .where(cases.c.id.in_(ids), cases.c.deleted_at.is_not(None)))).scalar_one()


async def test_a_bulk_delete_by_filter_is_accepted_at_once_and_finishes_with_exact_counts(platform):
    _tune(platform, job_batch_size=7)
    admin = await actor(platform, "MFGH", "adm.jobs", "admin")
    doctor = await actor(platform, "MFGH", "doc.jobs", "doctor")
    p = await patient(platform, doctor, "J-1")
    doomed = await insert_cases(platform.services.db, admin.institution_id, p["id"], 40, modality="CR")
    kept = await insert_cases(platform.services.db, admin.institution_id, p["id"], 5, modality="LAB")

    response = await platform.post("/api/jobs/jobs", headers=admin.headers,
                                   json={"kind": "delete", "filter": {"modality": "CR"}})
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == job["status_url"] == f"/api/jobs/jobs/{job['id']}"
    done = await wait_for_job(platform, admin, job["id"])
    assert done["state"] == "succeeded", done
    assert (done["total"], done["done"], done["failed"], done["progress"]) == (40, 40, 0, 1.0)
    assert await _deleted(platform, doomed) == 40 and await _deleted(platform, kept) == 0
    async with platform.services.db.connect() as conn:   # one version row per deleted case: none deleted twice
        versions = (await conn.execute(sa.select(record_versions).where(record_versions.c.entity_id.in_(doomed)))).mappings().all()
        batches = (await conn.execute(sa.select(jobs.c.batches).where(jobs.c.id == job["id"]))).scalar_one()
    assert sorted(v["entity_id"] for v in versions) == sorted(doomed)
    assert batches == 6                                  # ceil(40 / 7): bounded batches
    # each keeps who deleted it, why, and what it was; ids are distinct ULIDs of the deletion's time
    assert {(v["entity_type"], v["version"], v["changed_by"], v["reason"]) for v in versions} == {
        ("case", 1, admin.user_id, f"bulk delete job {job['id']}")}
    assert all(v["old_values"] == {"deleted_at": None} and v["institution_id"] == admin.institution_id for v in versions)
    ids = [v["id"] for v in versions]
    assert len(set(ids)) == 40 and all(len(i) == 26 and i.isalnum() and i.isupper() for i in ids)
    assert all(abs((ULID.from_str(i).datetime - v["changed_at"]).total_seconds()) < 1 for i, v in zip(ids, versions))


async def test_the_same_idempotency_key_returns_the_same_job(platform):
    admin = await actor(platform, "MFGH", "adm.idem", "admin")
    doctor = await actor(platform, "MFGH", "doc.idem", "doctor")
    p = await patient(platform, doctor, "J-2")
    await insert_cases(platform.services.db, admin.institution_id, p["id"], 3, modality="MR")
    headers = {**admin.headers, "Idempotency-Key": "bulk-7f3a"}
    body = {"kind": "delete", "filter": {"modality": "MR"}}
    first = await platform.post("/api/jobs/jobs", headers=headers, json=body)
    second = await platform.post("/api/jobs/jobs", headers=headers, json=body)
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    await wait_for_job(platform, admin, first.json()["id"])
    async with platform.services.db.connect() as conn:
        count = (await conn.execute(sa.select(sa.func.count()).select_from(jobs)
                                    .where(jobs.c.institution_id == admin.institution_id))).scalar_one()
    assert count == 1


async def test_bad_requests_are_refused_and_nothing_is_done(platform):
    admin = await actor(platform, "MFGH", "adm.bad", "admin")
    doctor = await actor(platform, "MFGH", "doc.bad", "doctor")
    other = await actor(platform, "RRH", "doc.other", "doctor")
    p = await patient(platform, doctor, "J-3")
    mine = await insert_cases(platform.services.db, admin.institution_id, p["id"], 2)
    theirs = await case(platform, other, (await patient(platform, other, "O-1"))["id"])

    async def refused(who, body, status, code):
        response = await platform.post("/api/jobs/jobs", headers=who.headers, json=body)
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        if code:
            assert response.json()["code"] == code

    await refused(admin, {"kind": "shred", "filter": {"modality": "LAB"}}, 422, "unknown-job-kind")
    await refused(admin, {"kind": "delete", "filter": {}}, 422, "confirmation-required")
    await refused(admin, {"kind": "delete"}, 422, "confirmation-required")
    await refused(admin, {"kind": "delete", "filter": {"modality": "PET"}}, 422, "nothing-matches")
    await refused(admin, {"kind": "delete", "case_ids": [mine[0], theirs["id"]]}, 422, "unknown-cases")
    await refused(admin, {"kind": "delete", "filter": {"nonsense": 1}}, 422, None)
    await refused(doctor, {"kind": "delete", "case_ids": mine}, 403, None)
    patient_user = await actor(platform, "MFGH", "pat.bad", "patient")
    await refused(patient_user, {"kind": "export"}, 403, None)
    async with platform.services.db.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(jobs))).scalar_one() == 0
    assert await _deleted(platform, mine + [theirs["id"]]) == 0
    # confirmed, an empty filter is accepted
    response = await platform.post("/api/jobs/jobs", headers=admin.headers,
                                   json={"kind": "delete", "filter": {}, "confirm_all": True})
    assert response.status_code == 202
    assert (await wait_for_job(platform, admin, response.json()["id"]))["done"] == 2


async def test_admins_see_every_job_of_their_institution_doctors_their_own(platform):
    admin = await actor(platform, "MFGH", "adm.see", "admin")
    doctor = await actor(platform, "MFGH", "doc.see", "doctor")
    other_admin = await actor(platform, "RRH", "adm.elsewhere", "admin")
    p = await patient(platform, doctor, "J-4")
    await insert_cases(platform.services.db, admin.institution_id, p["id"], 2)
    mine = (await platform.post("/api/jobs/jobs", headers=doctor.headers, json={"kind": "export"})).json()
    theirs = (await platform.post("/api/jobs/jobs", headers=admin.headers,
                                  json={"kind": "delete", "case_ids": [], "confirm_all": True}))
    assert theirs.status_code == 422                                  # an empty id list
    admins = (await platform.post("/api/jobs/jobs", headers=admin.headers, json={"kind": "export"})).json()
    assert {j["id"] for j in (await platform.get("/api/jobs/jobs", headers=admin.headers)).json()["items"]} == {mine["id"], admins["id"]}
    assert [j["id"] for j in (await platform.get("/api/jobs/jobs", headers=doctor.headers)).json()["items"]] == [mine["id"]]
    assert (await platform.get(f"/api/jobs/jobs/{admins['id']}", headers=doctor.headers)).status_code == 404
    assert (await platform.get(f"/api/jobs/jobs/{mine['id']}", headers=other_admin.headers)).status_code == 404
    assert (await platform.post(f"/api/jobs/jobs/{mine['id']}/cancel", headers=other_admin.headers)).status_code == 404
    await wait_for_job(platform, admin, mine["id"])
    await wait_for_job(platform, admin, admins["id"])


async def test_cancel_stops_a_job_between_batches_and_a_deadline_expires_it(platform):
    _tune(platform, job_batch_size=2, job_batch_pause_s=0.2)
    admin = await actor(platform, "MFGH", "adm.stop", "admin")
    doctor = await actor(platform, "MFGH", "doc.stop", "doctor")
    p = await patient(platform, doctor, "J-5")
    ids = await insert_cases(platform.services.db, admin.institution_id, p["id"], 30, modality="CT")
    job = (await platform.post("/api/jobs/jobs", headers=admin.headers, json={"kind": "delete", "case_ids": ids})).json()
    await wait_for_job(platform, admin, job["id"], states=("running",))
    cancelled = await platform.post(f"/api/jobs/jobs/{job['id']}/cancel", headers=admin.headers)
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    final = await wait_for_job(platform, admin, job["id"])
    assert final["state"] == "cancelled" and final["done"] < 30
    assert await _deleted(platform, ids) == (await wait_for_job(platform, admin, job["id"]))["done"]
    again = await platform.post(f"/api/jobs/jobs/{job['id']}/cancel", headers=admin.headers)
    assert again.status_code == 409

    rest = [i for i in ids if i]
    late = (await platform.post("/api/jobs/jobs", headers=admin.headers,
                                json={"kind": "archive", "case_ids": rest, "deadline_s": 1})).json()
    expired = await wait_for_job(platform, admin, late["id"])
    assert expired["state"] == "expired" and "deadline" in expired["error"]
    assert expired["done"] < 30


async def test_archive_moves_the_cases_objects_to_the_archive_tier(platform):
    admin = await actor(platform, "MFGH", "adm.arch", "admin")
    doctor = await actor(platform, "MFGH", "doc.arch", "doctor")
    p = await patient(platform, doctor, "J-6")
    ids = await insert_cases(platform.services.db, admin.institution_id, p["id"], 3)
    objects = platform.services.objects
    await objects.put("dicom", f"{admin.institution_id}/{ids[0]}/1.2.3/1.dcm", b"DICM-one")
    await objects.put("dicom", f"{admin.institution_id}/{ids[0]}/1.2.3/2.dcm", b"DICM-two")
    await objects.put("renders", f"{admin.institution_id}/{ids[1]}/thumb.png", b"PNG")
    await objects.put("dicom", f"{admin.institution_id}/unrelated/x.dcm", b"stay")
    job = (await platform.post("/api/jobs/jobs", headers=admin.headers, json={"kind": "archive", "case_ids": ids})).json()
    done = await wait_for_job(platform, admin, job["id"])
    assert (done["state"], done["done"], done["failed"]) == ("succeeded", 3, 0)
    assert await objects.get("archive", f"dicom/{admin.institution_id}/{ids[0]}/1.2.3/2.dcm") == b"DICM-two"
    assert await objects.get("archive", f"renders/{admin.institution_id}/{ids[1]}/thumb.png") == b"PNG"
    assert await objects.list("dicom", f"{admin.institution_id}/{ids[0]}/") == []
    assert await objects.get("dicom", f"{admin.institution_id}/unrelated/x.dcm") == b"stay"
    async with platform.services.db.connect() as conn:
        moved = dict((await conn.execute(sa.select(case_archive.c.case_id, case_archive.c.objects_moved))).all())
    assert moved == {ids[0]: 2, ids[1]: 1, ids[2]: 0}
    # archiving them again by filter finds nothing left to do
    again = await platform.post("/api/jobs/jobs", headers=admin.headers, json={"kind": "archive", "case_ids": ids})
    assert (await wait_for_job(platform, admin, again.json()["id"]))["done"] == 0


async def test_archiving_a_case_moves_its_linked_study_and_the_images_stay_viewable(platform):
    admin = await actor(platform, "MFGH", "adm.arch2", "admin")
    doctor = await actor(platform, "MFGH", "doc.arch2", "doctor")
    p = await patient(platform, doctor, "J-7")
    stored = (await platform.post("/api/imaging_ingest/instances", content=instance(patient_id="J-7", rows=16, columns=16),
                                  headers={**doctor.headers, "Content-Type": "application/dicom"})).json()["instances"][0]
    assert stored["status"] == "stored", stored
    c = await case(platform, doctor, p["id"], exam_type="ct", modality="CT", title="CT chest")
    linked = await platform.post(f"/api/cases/cases/{c['id']}/items", headers=doctor.headers, json={
        "kind": "imaging_study", "title": "CT chest", "content": {"study_instance_uid": stored["study_uid"]}})
    assert linked.status_code == 201, linked.text

    job = (await platform.post("/api/jobs/jobs", headers=admin.headers, json={"kind": "archive", "case_ids": [c["id"]]})).json()
    assert (await wait_for_job(platform, admin, job["id"]))["state"] == "succeeded"
    objects, prefix = platform.services.objects, f"{admin.institution_id}/{stored['study_uid']}/"
    assert await objects.list("dicom", prefix) == []
    assert len(await objects.list("archive", f"dicom/{prefix}")) == 1
    base = f"/api/imaging_search/studies/{stored['study_uid']}/series/{stored['series_uid']}/instances/{stored['sop_instance_uid']}"
    signed = await platform.get(base + "/url", headers=doctor.headers)
    assert signed.status_code == 200, signed.text
    fetched = await fetch_signed(platform, signed.json()["url"])
    assert fetched.status_code == 200 and fetched.content[128:132] == b"DICM"
    rendered = await platform.get(base + "/rendered", params={"size": 16}, headers=doctor.headers)
    assert rendered.status_code == 200, rendered.text


async def _package(platform, admin, batch_id):
    link = await platform.get(f"/api/jobs/backups/{batch_id}/download", headers=admin.headers)
    assert link.status_code == 200, link.text
    info = link.json()
    if platform.kind == "embedded":
        content = (await platform.get(info["url"].split("http://127.0.0.1:8080", 1)[-1])).content
    else:
        async with httpx.AsyncClient() as http:
            content = (await http.get(info["url"])).content
    assert hashlib.sha256(content).hexdigest() == info["sha256"] and len(content) == info["size_bytes"]
    return zipfile.ZipFile(io.BytesIO(content))


async def test_full_then_incremental_exports_are_backup_batches_with_checksummed_packages(platform):
    _tune(platform, job_batch_size=4)
    admin = await actor(platform, "MFGH", "adm.exp", "admin")
    doctor = await actor(platform, "MFGH", "doc.exp", "doctor")
    p = await patient(platform, doctor, "J-7")
    await insert_cases(platform.services.db, admin.institution_id, p["id"], 10)
    full = (await platform.post("/api/jobs/jobs", headers=admin.headers,
                                json={"kind": "export", "export": {"mode": "full", "format": "csv"}})).json()
    full = await wait_for_job(platform, admin, full["id"])
    assert full["state"] == "succeeded" and full["result"]["rows"] == 10
    await insert_cases(platform.services.db, admin.institution_id, p["id"], 3, modality="US")
    inc = (await platform.post("/api/jobs/jobs", headers=admin.headers,
                               json={"kind": "export", "export": {"mode": "incremental", "format": "xlsx"}})).json()
    inc = await wait_for_job(platform, admin, inc["id"])
    assert inc["state"] == "succeeded" and inc["result"]["rows"] == 3

    listed = (await platform.get("/api/jobs/backups", headers=admin.headers)).json()["items"]
    assert [b["mode"] for b in listed] == ["incremental", "full"]
    assert listed[0]["since"] is not None and listed[1]["since"] is None
    assert all(b["created_by"] == admin.user_id for b in listed)
    with await _package(platform, admin, full["result"]["backup_batch_id"]) as z:
        manifest = json.loads(z.read("manifest.json"))
        data = z.read("cases.csv")
        assert manifest["rows"] == 10 and manifest["files"][0]["sha256"] == hashlib.sha256(data).hexdigest()
        assert data.decode().count("\n") == 11
    with await _package(platform, admin, inc["result"]["backup_batch_id"]) as z:
        assert "cases.xlsx" in z.namelist() and json.loads(z.read("manifest.json"))["mode"] == "incremental"
    assert (await platform.get("/api/jobs/backups", headers=doctor.headers)).status_code == 403
    assert (await platform.get(f"/api/jobs/backups/{listed[0]['id']}/download", headers=doctor.headers)).status_code == 404


async def test_a_search_too_large_to_export_at_once_becomes_an_export_job(platform):
    _tune(platform, export_max_rows=5)
    doctor = await actor(platform, "MFGH", "doc.big", "doctor")
    p = await patient(platform, doctor, "J-8")
    await insert_cases(platform.services.db, doctor.institution_id, p["id"], 12, modality="DX")
    response = await platform.get("/api/case_search/cases/export", headers=doctor.headers, params={"modality": "DX"})
    assert response.status_code == 202, response.text
    job = await wait_for_job(platform, doctor, response.json()["id"])
    assert job["state"] == "succeeded" and job["result"]["rows"] == 12
    with await _package(platform, doctor, job["result"]["backup_batch_id"]) as z:
        assert json.loads(z.read("manifest.json"))["filter"] == {"modality": "DX"}


async def test_every_submission_and_cancel_is_audited(platform):
    admin = await actor(platform, "MFGH", "adm.aud", "admin")
    doctor = await actor(platform, "MFGH", "doc.aud", "doctor")
    p = await patient(platform, doctor, "J-9")
    ids = await insert_cases(platform.services.db, admin.institution_id, p["id"], 2)
    job = (await platform.post("/api/jobs/jobs", headers=admin.headers, json={"kind": "delete", "case_ids": ids})).json()
    await wait_for_job(platform, admin, job["id"])
    actions = set()
    for _ in range(200):
        async with platform.services.db.connect() as conn:
            actions = set((await conn.execute(sa.select(audit_log.c.action).where(audit_log.c.resource_id == job["id"]))).scalars())
        if {"job.submitted", "job.succeeded"} <= actions:
            break
        import asyncio
        await asyncio.sleep(0.05)
    assert {"job.submitted", "job.succeeded"} <= actions
