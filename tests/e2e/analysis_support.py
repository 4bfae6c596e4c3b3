"""Building analysis test data through the API: an exam item per model (a stored DICOM study
or a lab panel), submissions, and waiting for a task to finish."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np
import pytest

from bus_diagnostics import consumers_of
from conftest import running_platform
from medflow.dicom.generate import Spec, make
from medflow.inference.catalog import model_module
from records_support import Actor, case, patient

DICOM = {"content-type": "application/dicom"}
TONGUE_PARAMS = {"description": "dry mouth, thirst at night",
                 "attributes": {"red_body": 0.9, "pale_body": 0.05, "yellow_coating": 0.8, "white_coating": 0.1,
                                "thick_coating": 0.6, "cracks": 0.4, "teeth_marks": 0.1, "dry": 0.85}}


@pytest.fixture(params=["embedded", "real"])
async def platform(request, tmp_path, model_server):
    """The platform over HTTP on embedded and on real adapters, its models on the real model server."""
    async with running_platform(request.param, tmp_path, models_url=model_server) as client:
        yield client


def synthetic():
    """The models' synthetic data generators (kserve/common/synthetic.py)."""
    model_module("tongue", "demo")          # mounts kserve/ as medflow_kserve
    import medflow_kserve.common.synthetic as syn
    return syn


def image_for(model: str, seed: int = 1, **spec) -> bytes:
    """A DICOM instance the model can read, made from the models' own synthetic generators."""
    syn, rng = synthetic(), np.random.default_rng(seed)
    if model in ("chest_xray_diagnosis", "chest_xray_report"):
        return make(Spec(modality=spec.pop("modality", "CR"), pixels=syn.chest_xray(rng, syn.cxr_labels(rng), 256), **spec))
    if model == "echo":
        return make(Spec(modality=spec.pop("modality", "US"), pixels=syn.echo_clip(rng, spec.pop("frames", 20), 96, 32)[0], **spec))
    if model == "tongue":
        return make(Spec(modality=spec.pop("modality", "XC"), pixels=syn.tongue(rng, 1, 128)[0], **spec))
    raise KeyError(model)


URINALYSIS = [("specific_gravity", 1.018, None), ("5803-2", 6.0, None), ("protein", 150.0, "mg/dL"),
              ("glucose", 0.0, "mg/dL"), ("rbc", 2.0, "/hpf"), ("wbc", 3.0, "/hpf"), ("nitrite", 0.0, None),
              ("albumin_creatinine_ratio", 320.0, "mg/g"), ("2160-0", 186.0, "umol/L"), ("bun", 38.0, "mg/dL"),
              ("egfr", 35.0, "mL/min/1.73m2")]


def urinalysis_content(drop: str | None = None) -> dict:
    return {"panel": "urinalysis", "specimen": "urine", "analytes": [
        {"code": c, "name": c, "value": v, **({"unit": u} if u else {})} for c, v, u in URINALYSIS if c != drop]}


@dataclass
class ExamItem:
    case_id: str
    item_id: str
    patient_id: str


async def imaging_item(platform, doctor: Actor, model: str, mrn: str, seed: int = 1, **spec) -> ExamItem:
    """A patient, a case, the study stored through the upload API, and its imaging item."""
    pat = await patient(platform, doctor, mrn, birth_date="1960-05-01")
    data = image_for(model, seed, patient_id=mrn, **spec)
    stored = await platform.post("/api/imaging_ingest/instances", headers={**doctor.headers, **DICOM}, content=data)
    assert stored.status_code in (200, 201), stored.text
    study_uid = stored.json()["instances"][0]["study_uid"]
    c = await case(platform, doctor, pat["id"], exam_type="imaging", modality=spec.get("modality", "CR"), title="Exam")
    item = await platform.post(f"/api/cases/cases/{c['id']}/items", headers=doctor.headers, json={
        "kind": "imaging_study", "title": "Study", "content": {"study_instance_uid": study_uid}})
    assert item.status_code == 201, item.text
    return ExamItem(c["id"], item.json()["id"], pat["id"])


async def panel_item(platform, doctor: Actor, mrn: str, content: dict | None = None) -> ExamItem:
    pat = await patient(platform, doctor, mrn, birth_date="1958-03-02")
    c = await case(platform, doctor, pat["id"])
    item = await platform.post(f"/api/cases/cases/{c['id']}/items", headers=doctor.headers, json={
        "kind": "lab_panel", "title": "Urinalysis", "content": content or urinalysis_content()})
    assert item.status_code == 201, item.text
    return ExamItem(c["id"], item.json()["id"], pat["id"])


async def submit(platform, doctor: Actor, item: ExamItem, model: str, headers: dict | None = None, **extra):
    return await platform.post("/api/analyses/analyses", headers={**doctor.headers, **(headers or {})},
                               json={"case_id": item.case_id, "item_id": item.item_id, "model": model, **extra})


async def finished(platform, actor: Actor, task_id: str, timeout_s: float = 60.0) -> dict:
    """Poll the task until it succeeded or failed."""
    ends = time.monotonic() + timeout_s
    while True:
        response = await platform.get(f"/api/analyses/analyses/{task_id}", headers=actor.headers)
        assert response.status_code == 200, response.text
        task = response.json()
        if task["state"] in ("succeeded", "failed"):
            return task
        assert time.monotonic() < ends, (f"task still {task['state']} after {timeout_s}s: "
                                         f"{ {k: task.get(k) for k in ('attempts', 'error_code', 'error')} }; "
                                         f"consumers: {consumers_of(platform)}")
        await asyncio.sleep(0.05)
