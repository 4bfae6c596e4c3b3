"""Demo analyses for the embedded run: exam items each model can read — a chest radiograph,
an echocardiogram cine clip and a tongue photograph (generated with the models' own
synthetic generators, ingested like uploads) and a full urinalysis and renal panel — on the
MFGH demo patients, submitted by the demo doctors once the local model server answers.
The results wait for review (``GET /api/analyses/analyses?mine=true`` as ``dr.wang``)."""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import numpy as np
import sqlalchemy as sa
from pydicom.uid import generate_uid

from medflow.analysis.tasks import Submission, submit
from medflow.auth.principal import Principal
from medflow.db.schema import analysis_tasks, institutions, patients, users
from medflow.records.cases import NewCase, add_item, create_case

if TYPE_CHECKING:
    from medflow.bootstrap import Services

log = logging.getLogger("medflow.demo")
READY_WAIT_S = 180.0
RENAL_PANEL = {"panel": "urinalysis", "specimen": "urine", "analytes": [
    {"code": "5811-5", "name": "Specific gravity", "value": 1.012},
    {"code": "5803-2", "name": "pH", "value": 5.5},
    {"code": "2888-6", "name": "Protein", "value": 1.8, "unit": "g/L", "flag": "high"},
    {"code": "2350-7", "name": "Glucose", "value": 0.0, "unit": "mmol/L"},
    {"code": "13945-1", "name": "Red cells", "value": 4, "unit": "/hpf"},
    {"code": "5821-4", "name": "White cells", "value": 2, "unit": "/hpf"},
    {"code": "5802-4", "name": "Nitrite", "value": 0},
    {"code": "9318-7", "name": "Albumin/creatinine", "value": 420, "unit": "mg/g", "flag": "high"},
    {"code": "2160-0", "name": "Serum creatinine", "value": 212, "unit": "umol/L", "flag": "high"},
    {"code": "3094-0", "name": "Urea nitrogen", "value": 41, "unit": "mg/dL", "flag": "high"},
    {"code": "33914-3", "name": "eGFR", "value": 29, "unit": "mL/min/1.73m2", "flag": "low"}]}
TONGUE = {"description": "thirsty at night, feels hot, restless sleep",
          "attributes": {"red_body": 0.85, "pale_body": 0.05, "yellow_coating": 0.7, "white_coating": 0.1,
                         "thick_coating": 0.5, "cracks": 0.3, "teeth_marks": 0.1, "dry": 0.8}}
_background: set[asyncio.Task] = set()


def _images() -> dict[str, tuple[str, np.ndarray]]:
    """Pixels (0..1) per model from kserve/common/synthetic.py."""
    from medflow.inference.catalog import model_module
    model_module("tongue", "demo")   # mounts kserve/ as medflow_kserve
    import medflow_kserve.common.synthetic as syn
    rng = np.random.default_rng(2026)
    return {"chest_xray_diagnosis": ("CR", syn.chest_xray(rng, syn.cxr_labels(rng), 512)),
            "echo": ("US", syn.echo_clip(rng, 24, 112, 32)[0]),
            "tongue": ("XC", syn.tongue(rng, 1, 256)[0])}


async def _store(services: "Services", institution_id: str, modality: str, pixels, mrn: str, description: str) -> str:
    from medflow.dicom.generate import Spec, make
    from medflow.imaging.ingest import ingest_file
    study_uid = generate_uid()
    data = make(Spec(modality=modality, patient_id=mrn, patient_name="Demo^Patient", study_uid=study_uid,
                     study_date=date.today(), accession_number=f"AI-{modality}-{mrn[-3:]}",
                     study_description=description, pixels=pixels))
    fd, name = tempfile.mkstemp(prefix="medflow-demo-", suffix=".dcm")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        await ingest_file(services, institution_id, Path(name), len(data))
    finally:
        Path(name).unlink(missing_ok=True)
    return study_uid


async def seed(services: "Services") -> int:
    """Create the exam items once and submit their analyses in the background; how many."""
    async with services.db.connect() as conn:
        institution_id = (await conn.execute(sa.select(institutions.c.id).where(institutions.c.code == "MFGH"))).scalar()
        if institution_id is None or (await conn.execute(sa.select(analysis_tasks.c.id).where(
                analysis_tasks.c.institution_id == institution_id).limit(1))).first():
            return 0
        people = dict((await conn.execute(sa.select(patients.c.mrn, patients.c.id).where(
            patients.c.institution_id == institution_id))).all())
        doctors = dict((await conn.execute(sa.select(users.c.username, users.c.id).where(
            users.c.institution_id == institution_id, users.c.role == "doctor"))).all())
    if not {"MFGH-000101", "MFGH-000102", "MFGH-000103"} <= set(people) or "dr.wang" not in doctors:
        return 0
    now = datetime.now(timezone.utc).replace(microsecond=0)
    images = _images()
    plan = [("chest_xray_diagnosis", "MFGH-000101", "Chest X-ray PA (AI)", {"indication": "cough and fever for 5 days"}),
            ("chest_xray_report", "MFGH-000101", None, None),
            ("echo", "MFGH-000102", "Echocardiogram (AI)", None),
            ("tongue", "MFGH-000103", "Tongue inspection (AI)", TONGUE),
            ("urinalysis", "MFGH-000103", "Renal panel (AI)", None)]
    submissions: list[Submission] = []
    key = ("", "")
    for model, mrn, title, params in plan:        # a plan entry without a title uses the previous exam item
        if title is not None:
            case = await create_case(services.db, institution_id, NewCase(
                patient_id=people[mrn], exam_type="ai_demo", modality=images.get(model, ("LAB",))[0],
                exam_time=now - timedelta(hours=len(submissions) + 1), title=title, doctor_id=doctors["dr.wang"]),
                doctors["dr.wang"])
            if model == "urinalysis":
                item = await add_item(services.db, institution_id, case["id"], "lab_panel", "Renal panel", RENAL_PANEL,
                                      doctors["dr.wang"])
            else:
                modality, pixels = images[model]
                uid = await _store(services, institution_id, modality, pixels, mrn, title)
                item = await add_item(services.db, institution_id, case["id"], "imaging_study", title,
                                      {"study_instance_uid": uid}, doctors["dr.wang"])
            key = (case["id"], item["id"])
        submissions.append(Submission(key[0], key[1], model, parameters=params))
    doctor = Principal(doctors["dr.wang"], "doctor", institution_id)
    task = asyncio.get_running_loop().create_task(_submit_when_ready(services, doctor, submissions))
    _background.add(task)
    task.add_done_callback(_background.discard)
    return len(submissions)


async def _submit_when_ready(services: "Services", doctor: Principal, submissions: list[Submission]) -> None:
    """Wait for the model server (the run command starts it beside the platform), then submit."""
    ready = services.settings.models_url.format(model="urinalysis", model_dns="urinalysis").rstrip("/") + "/v2/health/ready"
    deadline = asyncio.get_running_loop().time() + READY_WAIT_S
    async with httpx.AsyncClient(timeout=2) as client:
        while True:
            try:
                if (await client.get(ready)).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                log.warning("demo analyses not submitted: no model server at MEDFLOW_MODELS_URL")
                return
            await asyncio.sleep(1.0)
    for submission in submissions:
        await submit(services.db, services.bus, doctor, submission)
    log.info("demo analyses submitted", extra={"analyses": len(submissions)})
