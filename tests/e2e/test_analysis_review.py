"""Doctor review of analyses, on embedded and real adapters against the real model server:
accept findings into the record (some, then the rest), edit, reject, re-run; the model's
output never changes; each decision is stored and audited; who may not review is refused."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from medflow.db.schema import annotations, audit_log, case_items
from analysis_support import finished, imaging_item, panel_item, platform, submit  # noqa: F401 (fixture)
from records_support import actor, problem


@pytest.fixture
async def team(platform):
    doctor = await actor(platform, "MFGH", "doc.rev", "doctor", "RAD")
    admin = await actor(platform, "MFGH", "adm.rev", "admin")
    other = await actor(platform, "RRH", "doc.rev.rrh", "doctor")
    patient_user = await actor(platform, "MFGH", "pat.rev", "patient")
    return doctor, admin, other, patient_user


async def report_task(platform, doctor, mrn: str = "MRN-RV-1") -> dict:
    item = await imaging_item(platform, doctor, "chest_xray_report", mrn, seed=4)
    task = (await submit(platform, doctor, item, "chest_xray_report")).json()
    done = await finished(platform, doctor, task["id"])
    assert done["state"] == "succeeded", done
    return done


def review(platform, who, task_id: str, **body):
    return platform.post(f"/api/analyses/analyses/{task_id}/reviews", headers=who.headers, json=body)


async def record_annotations(platform, case_id: str) -> list[dict]:
    async with platform.services.db.connect() as conn:
        return [dict(r) for r in (await conn.execute(sa.select(annotations).where(
            annotations.c.case_id == case_id).order_by(annotations.c.finding_key))).mappings()]


async def audited(platform, task_id: str, action: str) -> bool:
    for _ in range(100):
        async with platform.services.db.connect() as conn:
            if (await conn.execute(sa.select(audit_log.c.id).where(audit_log.c.resource_id == task_id,
                                                                   audit_log.c.action == action))).first():
                return True
        await asyncio.sleep(0.05)
    return False


async def test_accepting_some_findings_then_the_rest_writes_them_into_the_record(platform, team):
    doctor = team[0]
    task = await report_task(platform, doctor)
    original = task["result"]
    first = await review(platform, doctor, task["id"], decision="accept", finding_keys=["f1", "f2"])
    assert first.status_code == 200, first.text
    assert first.json()["analysis"]["review_state"] == "partially_accepted"
    rows = await record_annotations(platform, task["case_id"])
    assert [(r["finding_key"], r["kind"], r["shape"], r["status"]) for r in rows] == \
        [("f1", "region", "rect", "reviewed"), ("f2", "region", "rect", "reviewed")]
    assert all(r["source_task_id"] == task["id"] and r["author_id"] == doctor.user_id for r in rows)
    x0, y0, x1, y1 = original["findings"][0]["box"]
    assert rows[0]["coordinates"] == [[x0, y0], [x1, y1]] and rows[0]["label"] == original["findings"][0]["label"]

    problem(await review(platform, doctor, task["id"], decision="accept", finding_keys=["f1"]), 409,
            "finding-already-accepted")
    rest = await review(platform, doctor, task["id"], decision="accept")
    assert rest.status_code == 200 and rest.json()["analysis"]["review_state"] == "accepted"
    assert rest.json()["review"]["finding_keys"] == ["f3", "f4", "f5", "f6"]
    assert len(await record_annotations(platform, task["case_id"])) == 6
    report_item = rest.json()["review"]["written"]["report_item"]
    async with platform.services.db.connect() as conn:
        item = (await conn.execute(sa.select(case_items).where(case_items.c.id == report_item))).mappings().one()
    assert item["kind"] == "report" and item["content"]["text"] == original["report"]

    after = (await platform.get(f"/api/analyses/analyses/{task['id']}", headers=doctor.headers)).json()
    assert after["result"] == original          # the model's output is kept as it was
    assert [r["decision"] for r in after["reviews"]] == ["accept", "accept"]
    problem(await review(platform, doctor, task["id"], decision="reject"), 409, "analysis-already-reviewed")
    assert await audited(platform, task["id"], "analysis.accepted")


async def test_an_edit_enters_the_record_and_leaves_the_model_output_unchanged(platform, team):
    doctor = team[0]
    task = await report_task(platform, doctor, "MRN-RV-2")
    edited = await review(platform, doctor, task["id"], decision="edit", reason="box too wide",
                          edits={"f2": {"label": "left lung (corrected)", "box": [0.1, 0.2, 0.4, 0.6]}},
                          report="No acute cardiopulmonary abnormality.")
    assert edited.status_code == 200, edited.text
    body = edited.json()
    assert body["review"]["finding_keys"] == ["f2"] and body["review"]["edits"]["report"].startswith("No acute")
    rows = await record_annotations(platform, task["case_id"])
    assert [(r["finding_key"], r["label"], r["coordinates"]) for r in rows] == \
        [("f2", "left lung (corrected)", [[0.1, 0.2], [0.4, 0.6]])]
    after = (await platform.get(f"/api/analyses/analyses/{task['id']}", headers=doctor.headers)).json()
    assert after["result"] == task["result"] and after["review_state"] == "partially_accepted"
    assert await audited(platform, task["id"], "analysis.edited")


async def test_bad_reviews_are_refused_and_change_nothing(platform, team):
    doctor, admin, other, patient_user = team
    task = await report_task(platform, doctor, "MRN-RV-3")
    body = problem(await review(platform, doctor, task["id"], decision="edit", edits={"f1": {"box": [0.9, 0.1, 0.2, 0.5]}}),
                   422, "validation-failed")
    assert body["errors"][0]["loc"].startswith("body.edits.f1")
    problem(await review(platform, doctor, task["id"], decision="edit", edits={"f1": {"probability": 1.0}}), 422,
            "validation-failed")
    problem(await review(platform, doctor, task["id"], decision="accept", finding_keys=["f99"]), 422, "validation-failed")
    problem(await review(platform, doctor, task["id"], decision="edit"), 422, "edits-required")
    problem(await review(platform, doctor, task["id"], decision="approve"), 422, "validation-failed")
    problem(await review(platform, admin, task["id"], decision="accept"), 403, "forbidden")
    problem(await review(platform, patient_user, task["id"], decision="accept"), 403, "forbidden")
    problem(await review(platform, other, task["id"], decision="accept"), 404, "not-found")
    assert await record_annotations(platform, task["case_id"]) == []
    after = (await platform.get(f"/api/analyses/analyses/{task['id']}", headers=doctor.headers)).json()
    assert after["review_state"] == "pending" and after["reviews"] == []


async def test_reject_closes_the_review_and_writes_nothing(platform, team):
    doctor = team[0]
    item = await panel_item(platform, doctor, "MRN-RV-4")
    task = await finished(platform, doctor, (await submit(platform, doctor, item, "urinalysis")).json()["id"])
    rejected = await review(platform, doctor, task["id"], decision="reject", reason="sample haemolysed")
    assert rejected.status_code == 200 and rejected.json()["analysis"]["review_state"] == "rejected"
    assert rejected.json()["review"]["reason"] == "sample haemolysed"
    assert await record_annotations(platform, task["case_id"]) == []
    problem(await review(platform, doctor, task["id"], decision="accept"), 409, "analysis-already-reviewed")
    assert await audited(platform, task["id"], "analysis.rejected")


async def test_rerun_makes_a_new_task_and_keeps_the_first(platform, team):
    doctor = team[0]
    item = await panel_item(platform, doctor, "MRN-RV-5")
    first = await finished(platform, doctor, (await submit(platform, doctor, item, "urinalysis")).json()["id"])
    again = await review(platform, doctor, first["id"], decision="rerun", reason="second opinion")
    assert again.status_code == 202, again.text
    new = again.json()["rerun"]
    assert again.headers["location"] == new["status_url"] and new["run"] == 2 and new["rerun_of"] == first["id"]
    assert again.json()["analysis"]["review_state"] == "rerun"
    second = await finished(platform, doctor, new["id"])
    assert second["state"] == "succeeded" and second["result"]["probabilities"] == first["result"]["probabilities"]
    old = (await platform.get(f"/api/analyses/analyses/{first['id']}", headers=doctor.headers)).json()
    assert old["result"] == first["result"] and old["reviews"][0]["decision"] == "rerun"
    resubmitted = await submit(platform, doctor, item, "urinalysis")          # the newest run is the input's task now
    assert resubmitted.json()["id"] == new["id"]
    problem(await review(platform, doctor, first["id"], decision="rerun"), 409, "analysis-already-reviewed")
    assert await audited(platform, first["id"], "analysis.rerun")


async def test_a_failed_analysis_cannot_be_accepted_but_can_be_rerun(platform, team):
    doctor = team[0]
    from analysis_support import urinalysis_content
    item = await panel_item(platform, doctor, "MRN-RV-6", urinalysis_content(drop="egfr"))
    failed = await finished(platform, doctor, (await submit(platform, doctor, item, "urinalysis")).json()["id"])
    assert failed["state"] == "failed"
    problem(await review(platform, doctor, failed["id"], decision="accept"), 409, "analysis-not-reviewable")
    rerun = await review(platform, doctor, failed["id"], decision="rerun")
    assert rerun.status_code == 202 and rerun.json()["rerun"]["run"] == 2
