"""The analysis workflow end to end over HTTP, on embedded and real adapters, against the real
KServe model server: submit (202, idempotent), the worker's model call, structured results
of all five models, progress by polling and by server-sent events, and every refusal."""

from __future__ import annotations

import asyncio
import json

import pytest
import sqlalchemy as sa

from medflow.db.schema import analysis_tasks, audit_log
from medflow.runtime import metrics
from analysis_support import (TONGUE_PARAMS, finished, imaging_item, panel_item, platform,  # noqa: F401 (fixture)
                              submit, urinalysis_content)
from records_support import actor, problem


@pytest.fixture
async def team(platform):
    doctor = await actor(platform, "MFGH", "doc.ai", "doctor", "RAD")
    colleague = await actor(platform, "MFGH", "doc.ai2", "doctor", "CARD")
    admin = await actor(platform, "MFGH", "adm.ai", "admin")
    other = await actor(platform, "RRH", "doc.rrh", "doctor")
    patient_user = await actor(platform, "MFGH", "pat.ai", "patient")
    return doctor, colleague, admin, other, patient_user


def model_calls(model: str) -> float:
    return metrics.MODEL_CALLS.labels(model, "ok")._value.get()


async def task_rows(platform) -> int:
    async with platform.services.db.connect() as conn:
        return (await conn.execute(sa.select(sa.func.count()).select_from(analysis_tasks))).scalar_one()


async def audit_actions(platform, resource_id: str) -> list[str]:
    for _ in range(100):   # the audit sink consumes the events asynchronously
        async with platform.services.db.connect() as conn:
            found = [r for (r,) in (await conn.execute(sa.select(audit_log.c.action).where(
                audit_log.c.resource_id == resource_id).order_by(audit_log.c.occurred_at)))]
        if found:
            return found
        await asyncio.sleep(0.05)
    return []


async def test_chest_xray_diagnosis_from_submission_to_structured_result(platform, team):
    doctor, colleague, *_ = team
    item = await imaging_item(platform, doctor, "chest_xray_diagnosis", "MRN-CXR-1")
    response = await submit(platform, doctor, item, "chest_xray_diagnosis", parameters={"indication": "cough, fever"})
    assert response.status_code == 202, response.text
    task = response.json()
    assert response.headers["location"] == task["status_url"] and task["state"] in ("queued", "running", "succeeded")

    done = await finished(platform, colleague, task["id"])   # any doctor of the institution may follow it
    assert done["state"] == "succeeded", done
    result = done["result"]
    assert result["model"] == "chest_xray_diagnosis" and result["model_version"] == "1"
    assert result["engine"] and result["not_for_clinical_use"] is True
    assert set(result["probabilities"]) >= {"cardiomegaly", "pneumothorax", "no_finding"}
    assert all(0 <= p <= 1 for p in result["probabilities"].values())
    for f in result["findings"]:
        assert f["kind"] == "label" and f["probability"] >= 0.5 and f["key"].startswith("f")
    assert done["timings"]["model_call_ms"] > 0 and done["timings"]["total_ms"] >= done["timings"]["queue_ms"]
    assert done["attempts"] == 1 and done["review_state"] == "pending" and done["reviews"] == []
    assert "analysis.submitted" in await audit_actions(platform, task["id"])


@pytest.mark.parametrize("platform", ["embedded"], indirect=True)
async def test_every_model_gives_its_kind_of_result(platform, team):
    doctor = team[0]
    report_item = await imaging_item(platform, doctor, "chest_xray_report", "MRN-R-1", seed=3)
    echo_item = await imaging_item(platform, doctor, "echo", "MRN-E-1", modality="US")
    tongue_item = await imaging_item(platform, doctor, "tongue", "MRN-T-1", modality="XC")
    lab_item = await panel_item(platform, doctor, "MRN-U-1")
    ids = {}
    for model, item, extra in (("chest_xray_report", report_item, {}), ("echo", echo_item, {}),
                               ("tongue", tongue_item, {"parameters": TONGUE_PARAMS}), ("urinalysis", lab_item, {})):
        response = await submit(platform, doctor, item, model, **extra)
        assert response.status_code == 202, response.text
        ids[model] = response.json()["id"]
    results = {m: await finished(platform, doctor, i) for m, i in ids.items()}
    assert all(r["state"] == "succeeded" for r in results.values()), results

    report = results["chest_xray_report"]["result"]
    assert report["report"] and len(report["findings"]) == 6
    for region in report["findings"]:
        x0, y0, x1, y1 = region["box"]
        assert region["kind"] == "region" and region["text"] and 0 <= x0 <= x1 <= 1 and 0 <= y0 <= y1 <= 1
        assert 0 <= region["confidence"] <= 1 and 0 <= region["detection_score"] <= 1

    echo = results["echo"]["result"]
    assert 0 <= echo["ejection_fraction"] <= 100
    ef, contour = echo["findings"]
    assert ef == {"key": "f1", "kind": "measurement", "label": "ejection_fraction", "value": echo["ejection_fraction"], "unit": "%"}
    assert contour["kind"] == "region" and len(contour["contour"]) == 32

    kidney = results["urinalysis"]["result"]
    assert set(kidney["probabilities"]) == {"chronic_kidney_disease", "proteinuria", "acute_kidney_injury_risk",
                                            "urinary_tract_infection"}

    tongue = results["tongue"]["result"]
    assert tongue["syndrome"] in tongue["probabilities"] and tongue["attributes"] == TONGUE_PARAMS["attributes"]
    assert tongue["findings"][0]["kind"] == "syndrome"


async def test_same_input_submitted_twenty_times_at_once_is_one_task_and_one_model_call(platform, team):
    doctor, colleague, *_ = team
    item = await panel_item(platform, doctor, "MRN-DUP-1")
    before = model_calls("urinalysis")
    answers = await asyncio.gather(*(submit(platform, doctor if i % 2 else colleague, item, "urinalysis") for i in range(20)))
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["id"] for a in answers}) == 1
    done = await finished(platform, doctor, answers[0].json()["id"])
    assert done["state"] == "succeeded"
    again = await submit(platform, doctor, item, "urinalysis")        # after it finished: still the same task
    assert again.status_code == 202 and again.json()["id"] == done["id"]
    await asyncio.sleep(0.3)
    assert model_calls("urinalysis") - before == 1
    assert await task_rows(platform) == 1


async def test_idempotency_key_returns_the_same_task_and_refuses_another_input(platform, team):
    doctor = team[0]
    first, second = await panel_item(platform, doctor, "MRN-IK-1"), await panel_item(platform, doctor, "MRN-IK-2")
    a = await submit(platform, doctor, first, "urinalysis", headers={"idempotency-key": "k-1"})
    b = await submit(platform, doctor, first, "urinalysis", headers={"idempotency-key": "k-1"})
    assert a.status_code == b.status_code == 202 and a.json()["id"] == b.json()["id"]
    problem(await submit(platform, doctor, second, "urinalysis", headers={"idempotency-key": "k-1"}), 409,
            "idempotency-key-reused")
    problem(await submit(platform, doctor, second, "urinalysis", headers={"idempotency-key": "x" * 101}), 422,
            "invalid-idempotency-key")
    assert await task_rows(platform) == 1


async def test_progress_is_pushed_as_server_sent_events(platform, team):
    doctor = team[0]
    item = await panel_item(platform, doctor, "MRN-SSE-1")
    task = (await submit(platform, doctor, item, "urinalysis")).json()
    states = []
    async with platform.stream("GET", f"/api/analyses/analyses/{task['id']}/events", headers=doctor.headers) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                body = json.loads(line[5:])
                assert body["id"] == task["id"] and body["result"] is None   # the stream never carries the result
                states.append(body["state"])
    assert states[-1] == "succeeded" and set(states) <= {"queued", "running", "succeeded"}


async def test_refusals_change_nothing(platform, team):
    doctor, _, admin, other, patient_user = team
    cxr = await imaging_item(platform, doctor, "chest_xray_diagnosis", "MRN-REF-1")
    lab = await panel_item(platform, doctor, "MRN-REF-2")
    problem(await submit(platform, doctor, cxr, "echo"), 422, "wrong-modality")
    problem(await submit(platform, doctor, cxr, "urinalysis"), 422, "wrong-input-for-model")
    problem(await submit(platform, doctor, lab, "chest_xray_diagnosis"), 422, "wrong-input-for-model")
    problem(await submit(platform, doctor, cxr, "chest_xray_diagnosis", model_version="9"), 422, "unknown-model-version")
    body = problem(await submit(platform, doctor, cxr, "tongue", parameters={"attributes": {"red_body": 2}}), 422,
                   "validation-failed")
    assert any(e["loc"].startswith("body.parameters") for e in body["errors"])
    problem(await submit(platform, doctor, cxr, "nonexistent_model"), 422, "validation-failed")
    problem(await submit(platform, doctor, cxr, "chest_xray_diagnosis", parameters={"unknown": 1}), 422, "validation-failed")
    problem(await submit(platform, other, cxr, "chest_xray_diagnosis"), 404, "not-found")      # another institution
    problem(await submit(platform, admin, cxr, "chest_xray_diagnosis"), 403, "forbidden")
    problem(await submit(platform, patient_user, cxr, "chest_xray_diagnosis"), 403, "forbidden")
    assert await task_rows(platform) == 0

    task = (await submit(platform, doctor, lab, "urinalysis")).json()
    problem(await platform.get(f"/api/analyses/analyses/{task['id']}", headers=other.headers), 404, "not-found")
    problem(await platform.get(f"/api/analyses/analyses/{task['id']}", headers=patient_user.headers), 403, "forbidden")
    listed = await platform.get("/api/analyses/analyses", headers=other.headers)
    assert listed.status_code == 200 and listed.json()["items"] == []


async def test_a_study_of_another_patient_cannot_be_analysed_on_this_case(platform, team):
    doctor = team[0]
    mine = await imaging_item(platform, doctor, "chest_xray_diagnosis", "MRN-PA-1")
    theirs = await imaging_item(platform, doctor, "chest_xray_diagnosis", "MRN-PA-2", seed=2)
    study = (await platform.get(f"/api/cases/cases/{theirs.case_id}", headers=doctor.headers)).json()["items"][0]
    moved = await platform.post(f"/api/cases/cases/{mine.case_id}/items", headers=doctor.headers, json={
        "kind": "imaging_study", "title": "wrong study", "content": study["content"]})
    wrong = type(mine)(mine.case_id, moved.json()["id"], mine.patient_id)
    problem(await submit(platform, doctor, wrong, "chest_xray_diagnosis"), 422, "study-of-another-patient")


async def test_model_refusing_the_input_fails_the_task_with_its_reason(platform, team):
    doctor = team[0]
    item = await panel_item(platform, doctor, "MRN-MR-1", urinalysis_content(drop="bun"))
    task = (await submit(platform, doctor, item, "urinalysis")).json()
    done = await finished(platform, doctor, task["id"])
    assert done["state"] == "failed" and done["error_code"] == "model-rejected-input"
    assert "bun" in done["error"] and done["result"] is None and done["attempts"] == 1


async def test_list_by_case_and_mine_with_keyset_pages(platform, team):
    doctor, colleague, *_ = team
    items = [await panel_item(platform, doctor, f"MRN-L-{i}") for i in range(3)]
    ids = [(await submit(platform, doctor, it, "urinalysis")).json()["id"] for it in items]
    mine = (await submit(platform, colleague, await panel_item(platform, colleague, "MRN-L-9"), "urinalysis")).json()["id"]
    page1 = (await platform.get("/api/analyses/analyses?mine=true&limit=2", headers=doctor.headers)).json()
    page2 = (await platform.get(f"/api/analyses/analyses?mine=true&limit=2&cursor={page1['next_cursor']}",
                                headers=doctor.headers)).json()
    assert [t["id"] for t in page1["items"] + page2["items"]] == ids[::-1] and page2["next_cursor"] is None
    by_case = (await platform.get(f"/api/analyses/analyses?case_id={items[0].case_id}", headers=colleague.headers)).json()
    assert [t["id"] for t in by_case["items"]] == [ids[0]]
    assert mine not in [t["id"] for t in page1["items"] + page2["items"]]
    problem(await platform.get("/api/analyses/analyses?cursor=garbage", headers=doctor.headers), 400, "invalid-cursor")
