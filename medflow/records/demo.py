"""Demo records for the embedded run: patients of MFGH (two linked to the demo patient
accounts), their exams with reports, urinalysis panels and vital signs, an annotation, and
released summaries the demo patients can read."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING

import sqlalchemy as sa

from medflow.db.schema import departments, institutions, patients, users
from medflow.records.annotations import NewAnnotation, annotate
from medflow.records.cases import NewCase, add_item, create_case, update_case
from medflow.records.patients import Identifier, NewPatient, register_patient

if TYPE_CHECKING:
    from medflow.bootstrap import Services

URINALYSIS = {"panel": "urinalysis", "specimen": "urine", "analytes": [
    {"code": "PRO", "name": "Protein", "value": 0.3, "unit": "g/L", "reference_low": 0, "reference_high": 0.15, "flag": "high"},
    {"code": "CREA", "name": "Creatinine", "value": 9.8, "unit": "mmol/L", "reference_low": 3.5, "reference_high": 24.6, "flag": "normal"},
    {"code": "SG", "name": "Specific gravity", "value": 1.021, "reference_low": 1.005, "reference_high": 1.030},
    {"code": "BLD", "name": "Blood", "value": "negative"}]}

# (mrn, name, sex, birth date, national id, account username or None)
DEMO_PATIENTS = [
    ("MFGH-000101", "Zhang Wei 张伟", "male", date(1968, 4, 12), "110101196804120017", "zhang.wei"),
    ("MFGH-000102", "Li Na 李娜", "female", date(1985, 9, 30), "310104198509300026", "li.na"),
    ("MFGH-000103", "Chen Jie 陈杰", "male", date(1952, 1, 5), None, None),
]


async def seed(services: "Services") -> int:
    """Create the demo patients and their exams once; returns how many patients were created."""
    db = services.db
    async with db.connect() as conn:
        institution_id = (await conn.execute(sa.select(institutions.c.id).where(institutions.c.code == "MFGH"))).scalar()
        if institution_id is None or (await conn.execute(sa.select(patients.c.id).where(
                patients.c.institution_id == institution_id).limit(1))).first():
            return 0
        accounts = dict((await conn.execute(sa.select(users.c.username, users.c.id).where(
            users.c.institution_id == institution_id))).all())
        depts = dict((await conn.execute(sa.select(departments.c.code, departments.c.id).where(
            departments.c.institution_id == institution_id))).all())
    doctor = accounts.get("dr.li")
    now = datetime.now(timezone.utc).replace(microsecond=0)
    for index, (mrn, name, sex, born, national_id, username) in enumerate(DEMO_PATIENTS):
        identifiers = (Identifier("national-id:cn", national_id),) if national_id else ()
        patient = await register_patient(db, institution_id, NewPatient(
            mrn=mrn, display_name=name, sex=sex, birth_date=born, identifiers=identifiers, user_id=accounts.get(username)))
        await _exams(services, institution_id, patient.id, depts, doctor, now - timedelta(days=30 * index), index == 0)
    return len(DEMO_PATIENTS)


async def _exams(services: "Services", institution_id: str, patient_id: str, depts: dict, doctor: str | None,
                 when: datetime, annotate_it: bool) -> None:
    db, actor = services.db, doctor or "system"
    lab = await create_case(db, institution_id, NewCase(
        patient_id=patient_id, exam_type="urinalysis", modality="LAB", exam_time=when - timedelta(days=2),
        title="Routine urinalysis", department_id=depts.get("NEPH"), doctor_id=doctor, status="final",
        diagnosis_codes=("N18.3",)), actor)
    await add_item(db, institution_id, lab["id"], "lab_panel", "Urinalysis", URINALYSIS, actor)
    await add_item(db, institution_id, lab["id"], "vitals", "At sampling",
                   {"heart_rate_bpm": 72, "systolic_mmhg": 138, "diastolic_mmhg": 86, "temperature_c": 36.6}, actor)
    await update_case(db, services.cache.cache, institution_id, lab["id"], {
        "released_summary": "Protein in the urine is slightly raised; kidney function is otherwise stable. "
                            "Please repeat the test in three months.", "released_at": when},
        expected_version=1, actor_id=actor, reason="released to patient")
    xray = await create_case(db, institution_id, NewCase(
        patient_id=patient_id, exam_type="chest_xray", modality="CR", exam_time=when, title="Chest X-ray PA",
        department_id=depts.get("RAD"), doctor_id=doctor, status="draft"), actor)
    await add_item(db, institution_id, xray["id"], "report", "Findings",
                            {"text": "Heart size normal. No focal consolidation. No pleural effusion."}, actor)
    if annotate_it:
        await annotate(db, institution_id, xray["id"], NewAnnotation(kind="label", label="normal"), actor)
