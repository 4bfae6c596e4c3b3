"""Imaging end to end over HTTP, on embedded and real adapters: uploads (single, multipart,
STOW-RS), every kind of bad input, idempotent re-sends, the patient index, QIDO search,
signed retrieval, renders, and who may see what."""

from __future__ import annotations

import asyncio
import io
import time
from datetime import date
from urllib.parse import parse_qs

import pytest
import sqlalchemy as sa
from PIL import Image

from medflow.db.schema import audit_log, imaging_instances, imaging_studies, patients
from medflow.imaging.ingest import BUCKET
from imaging_support import fetch_signed as _fetch, instance, multipart
from records_support import actor, patient, problem as _problem

DICOM = {"content-type": "application/dicom"}


@pytest.fixture
async def team(platform):
    doctor = await actor(platform, "MFGH", "doc.img", "doctor", "RAD")
    admin = await actor(platform, "MFGH", "adm.img", "admin")
    other = await actor(platform, "RRH", "doc.other", "doctor")
    patient_user = await actor(platform, "MFGH", "pat.img", "patient")
    return doctor, admin, other, patient_user


async def _rows(platform, table) -> int:
    async with platform.services.db.connect() as conn:
        return (await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one()


async def _objects(platform, institution_id: str) -> list[str]:
    return [o.key for o in await platform.services.objects.list(BUCKET, prefix=f"{institution_id}/")]


async def test_a_batch_is_stored_and_each_instance_answers_on_its_own(platform, team):
    doctor, *_ = team
    good = [instance(patient_id="MR-1", patient_name="Zhang^Wei", instance_number=i) for i in (1, 2)]
    implicit = instance(patient_id="MR-1", patient_name="Zhang^Wei", implicit_vr=True)
    big_endian = instance(patient_id="MR-1", patient_name="Zhang^Wei", big_endian=True)
    chinese = instance(patient_id="MR-2", patient_name="张^伟", charset="GB18030")
    zip_bomb = b"PK\x03\x04" + b"\x00" * 2000
    body, content_type = multipart(
        [(d, {}) for d in good + [implicit, big_endian, chinese]]
        + [(b"this is not dicom at all" * 20, {}), (good[0][:-500], {}),
           (zip_bomb, {"Content-Type": "application/zip"}),
           (instance(patient_id="MR-1"), {"Content-Disposition": 'attachment; filename="../../etc/passwd"'})])
    response = await platform.post("/api/imaging_ingest/studies", headers={**doctor.headers, "content-type": content_type},
                                   content=body)
    assert response.status_code == 200, response.text
    result = response.json()
    statuses = [(i["status"], i["reason"]) for i in result["instances"]]
    assert statuses == [("stored", None)] * 5 + [("rejected", "not-dicom"), ("rejected", "truncated"),
                                                  ("rejected", "unsupported-media-type"),
                                                  ("rejected", "invalid-filename")]
    assert (result["stored"], result["duplicates"], result["rejected"]) == (5, 0, 4)
    body, content_type = multipart([(good[0], {}), (good[1], {})])
    again = await platform.post("/api/imaging_ingest/studies", headers={**doctor.headers, "content-type": content_type},
                                content=body)
    assert again.json()["duplicates"] == 2
    # the rows and the objects match one to one: nothing half-stored
    keys = await _objects(platform, doctor.institution_id)
    assert len(keys) == await _rows(platform, imaging_instances) == 5
    # the Chinese name was decoded from GB18030 and a patient registered through the MPI
    async with platform.services.db.connect() as conn:
        names = dict((await conn.execute(sa.select(patients.c.mrn, patients.c.display_name))).all())
    assert names["MR-2"] == "张 伟" and names["MR-1"] == "Zhang Wei"


async def test_resending_an_instance_changes_nothing_and_links_to_the_known_patient(platform, team):
    doctor, *_ = team
    known = await patient(platform, doctor, "MR-9", "Li Na")
    data = instance(patient_id="MR-9", patient_name="Li^Na")
    first = await platform.post("/api/imaging_ingest/instances", headers={**doctor.headers, **DICOM}, content=data)
    again = await platform.post("/api/imaging_ingest/instances", headers={**doctor.headers, **DICOM}, content=data)
    assert [first.json()["instances"][0]["status"], again.json()["instances"][0]["status"]] == ["stored", "duplicate"]
    assert await _rows(platform, imaging_instances) == 1
    found = await platform.get("/api/imaging_search/studies", params={"patient_id": known["id"]}, headers=doctor.headers)
    assert [s["mrn"] for s in found.json()["items"]] == ["MR-9"]


@pytest.mark.parametrize("case, reason", [
    ("missing_uid", "missing-uid"), ("wrong_vr_length", "malformed-dicom"), ("empty", "not-dicom")])
async def test_bad_single_instances_are_rejected_with_their_reason(platform, team, case, reason):
    doctor, *_ = team
    import pydicom
    data = instance(patient_id="MR-3")
    if case == "missing_uid":
        ds = pydicom.dcmread(io.BytesIO(data))
        del ds.SeriesInstanceUID
        out = io.BytesIO()
        ds.save_as(out)
        data = out.getvalue()
    elif case == "wrong_vr_length":
        # Rows (0028,0010) is US (2 bytes); declare 3 bytes and shift the rest along
        tag = b"\x28\x00\x10\x00US\x02\x00"
        at = data.index(tag)
        data = data[:at] + b"\x28\x00\x10\x00US\x03\x00" + data[at + 8:at + 10] + b"\x00" + data[at + 10:]
    else:
        data = b""
    response = await platform.post("/api/imaging_ingest/instances", headers={**doctor.headers, **DICOM}, content=data)
    assert response.status_code == 200, response.text
    assert response.json()["instances"][0]["reason"] == reason
    assert await _rows(platform, imaging_instances) == 0 and await _objects(platform, doctor.institution_id) == []


async def test_oversized_uploads_and_wrong_media_types_are_refused(platform, team):
    doctor, *_ = team
    huge = {**doctor.headers, **DICOM, "content-length": str(2 * 1024 ** 3)}
    _problem(await platform.post("/api/imaging_ingest/instances", headers=huge, content=b""), 413, "payload-too-large")
    _problem(await platform.post("/api/imaging_ingest/instances", headers={**doctor.headers, "content-type": "application/zip"},
                                 content=b"PK"), 415, "unsupported-media-type")
    _problem(await platform.post("/api/imaging_ingest/studies", headers={**doctor.headers, **DICOM},
                                 content=instance()), 415, "unsupported-media-type")
    _problem(await platform.post("/api/imaging_ingest/instances", headers=DICOM, content=instance()), 401, "unauthenticated")


async def test_search_by_patient_date_modality_accession_and_description_in_keyset_pages(platform, team):
    doctor, *_ = team
    uploads = []
    for day, modality, accession, desc in [(3, "CT", "A1", "CT head"), (10, "CR", "A2", "Chest PA"),
                                            (20, "CT", "A3", "CT abdomen"), (25, "US", "A4", "Echo")]:
        uploads.append(instance(patient_id="MR-5", modality=modality, accession_number=accession,
                                study_description=desc, study_date=date(2026, 10, day),
                                frames=3 if modality == "US" else 1))
    uploads.append(instance(patient_id="MR-6", modality="CT", study_date=date(2026, 9, 1), accession_number="B1"))
    body, content_type = multipart([(u, {}) for u in uploads], subtype="form-data")
    assert (await platform.post("/api/imaging_ingest/instances", headers={**doctor.headers, "content-type": content_type},
                                content=body)).json()["stored"] == 5

    async def search(**params):
        response = await platform.get("/api/imaging_search/studies", params=params, headers=doctor.headers)
        assert response.status_code == 200, response.text
        return response.json()

    assert [s["accession_number"] for s in (await search(PatientID="MR-5"))["items"]] == ["A4", "A3", "A2", "A1"]
    october_ct = await search(StudyDate="20261001-20261031", ModalitiesInStudy="CT")
    assert [s["accession_number"] for s in october_ct["items"]] == ["A3", "A1"]
    assert october_ct["items"][0]["modalities"] == ["CT"]
    assert [s["accession_number"] for s in (await search(AccessionNumber="A2"))["items"]] == ["A2"]
    assert [s["accession_number"] for s in (await search(study_description="abdomen"))["items"]] == ["A3"]
    seen, cursor = [], None
    while True:
        page = await search(limit=2, **({"cursor": cursor} if cursor else {}))
        seen += [s["accession_number"] for s in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ["A4", "A3", "A2", "A1", "B1"]
    for bad in ({"StudyDate": "2026-13"}, {"StudyDate": "20261031-20261001"}, {"ModalitiesInStudy": "ct;drop"},
                {"limit": 0}, {"unknown": 1}):
        _problem(await platform.get("/api/imaging_search/studies", params=bad, headers=doctor.headers), 422,
                 "validation-failed")
    _problem(await platform.get("/api/imaging_search/studies", params={"cursor": "garbage!"}, headers=doctor.headers),
             400, "invalid-cursor")


async def _one(platform, doctor, **fields) -> tuple[str, str, str]:
    data = instance(patient_id="MR-7", **fields)
    result = (await platform.post("/api/imaging_ingest/instances", headers={**doctor.headers, **DICOM},
                                  content=data)).json()["instances"][0]
    assert result["status"] == "stored", result
    return result["study_uid"], result["series_uid"], result["sop_instance_uid"]


async def test_retrieval_and_renders_go_through_signed_urls_that_expire(platform, team):
    doctor, admin, other, patient_user = team
    study, series, sop = await _one(platform, doctor, modality="US", frames=3, rows=32, columns=32)
    base = f"/api/imaging_search/studies/{study}/series/{series}/instances/{sop}"
    listed = await platform.get(f"/api/imaging_search/studies/{study}/series", headers=doctor.headers)
    assert listed.json()["items"][0]["instances"] == 1 and listed.json()["items"][0]["modality"] == "US"
    meta = await platform.get(base, headers=admin.headers)
    assert meta.status_code == 200 and meta.json()["frames"] == 3
    assert meta.json()["header"]["00100020"]["Value"] == ["MR-7"] and "7FE00010" not in meta.json()["header"]

    signed = (await platform.get(base + "/url", headers=doctor.headers)).json()
    assert signed["expires_in_s"] <= 600
    fetched = await _fetch(platform, signed["url"])
    assert fetched.status_code == 200 and fetched.content[128:132] == b"DICM"

    first = (await platform.get(base + "/rendered", params={"frame": 2, "size": 16}, headers=doctor.headers)).json()
    again = (await platform.get(base + "/rendered", params={"frame": 2, "size": 16}, headers=doctor.headers)).json()
    assert (first["cached"], again["cached"]) == (False, True)
    image = Image.open(io.BytesIO((await _fetch(platform, first["url"])).content))
    assert image.format == "PNG" and max(image.size) == 16
    _problem(await platform.get(base + "/rendered", params={"frame": 4}, headers=doctor.headers), 422, "no-such-frame")

    # tampered and expired links are refused
    tampered = signed["url"].replace("sig=", "sig=0") if platform.kind == "embedded" else \
        signed["url"].replace("Signature=", "Signature=0")
    assert (await _fetch(platform, tampered)).status_code == 403
    short = platform.services.objects
    expiring = await short.signed_url(BUCKET, f"{doctor.institution_id}/{study}/{series}/{sop}.dcm", 1)
    await asyncio.sleep(2.2)
    assert (await _fetch(platform, expiring)).status_code == 403

    # who may see it: staff of the institution only; every read audited
    _problem(await platform.get(base, headers=patient_user.headers), 403, "forbidden")
    _problem(await platform.get(base, headers=other.headers), 404, "not-found")
    _problem(await platform.get("/api/imaging_search/studies", headers=patient_user.headers), 403, "forbidden")
    assert not (await platform.get("/api/imaging_search/studies", headers=other.headers)).json()["items"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        async with platform.services.db.connect() as conn:
            actions = set((await conn.execute(sa.select(audit_log.c.action).where(
                audit_log.c.resource_type == "imaging_instance"))).scalars())
        if {"imaging.metadata_read", "imaging.retrieved", "imaging.rendered"} <= actions:
            break
        await asyncio.sleep(0.2)
    assert {"imaging.metadata_read", "imaging.retrieved", "imaging.rendered"} <= actions


async def test_ct_render_applies_rescale_and_the_requested_window(platform, team):
    doctor, *_ = team
    study, series, sop = await _one(platform, doctor, modality="CT", rows=32, columns=32)
    base = f"/api/imaging_search/studies/{study}/series/{series}/instances/{sop}/rendered"

    async def centre(**params) -> int:
        url = (await platform.get(base, params=params, headers=doctor.headers)).json()["url"]
        return Image.open(io.BytesIO((await _fetch(platform, url)).content)).getpixel((16, 16))

    # the disc is about 60 HU after the -1024 intercept: mid-grey in the header's 40/400
    # window, white in a narrow window below it, black in one above it
    assert 120 < await centre() < 160
    assert await centre(window_center=0, window_width=20) == 255
    assert await centre(window_center=500, window_width=20) == 0


async def test_an_instance_naming_another_patient_for_a_known_study_is_rejected(platform, team):
    doctor, *_ = team
    first = instance(patient_id="MR-11", study_uid="1.2.826.0.1.3680043.8.498.1")
    other = instance(patient_id="MR-12", study_uid="1.2.826.0.1.3680043.8.498.1")
    assert (await platform.post("/api/imaging_ingest/instances", headers={**doctor.headers, **DICOM},
                                content=first)).json()["stored"] == 1
    answer = (await platform.post("/api/imaging_ingest/instances", headers={**doctor.headers, **DICOM},
                                  content=other)).json()["instances"][0]
    assert (answer["status"], answer["reason"]) == ("rejected", "patient-mismatch")
    assert len(await _objects(platform, doctor.institution_id)) == await _rows(platform, imaging_instances) == 1
