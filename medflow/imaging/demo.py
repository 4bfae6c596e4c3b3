"""Demo images for the embedded run: generated studies for the demo patients of MFGH —
a CT series (Chinese name in GB18030), a chest CR (MONOCHROME1) and an ultrasound cine
(multi-frame) — ingested the way uploads are, so search, retrieval and renders show data."""

from __future__ import annotations

import os
import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from pydicom.uid import generate_uid

from medflow.db.schema import imaging_studies, institutions
from medflow.dicom.generate import Spec, make
from medflow.imaging.ingest import ingest_file

if TYPE_CHECKING:
    from medflow.bootstrap import Services


def demo_instances(today: date) -> list[Spec]:
    ct_study, ct_series = generate_uid(), generate_uid()
    specs = [Spec(modality="CT", patient_id="MFGH-000101", patient_name="张^伟", charset="GB18030", patient_sex="M",
                  birth_date="19680412", study_uid=ct_study, series_uid=ct_series, instance_number=n,
                  study_date=today - timedelta(days=3), accession_number="MFGH-CT-0001",
                  study_description="CT head without contrast", rows=128, columns=128, seed=n)
             for n in range(1, 5)]
    specs.append(Spec(modality="CR", patient_id="MFGH-000101", patient_name="Zhang^Wei", patient_sex="M",
                      birth_date="19680412", study_date=today - timedelta(days=1), accession_number="MFGH-CR-0002",
                      study_description="Chest X-ray PA", rows=256, columns=200))
    specs.append(Spec(modality="US", patient_id="MFGH-000102", patient_name="Li^Na", patient_sex="F",
                      birth_date="19850930", study_date=today - timedelta(days=7), accession_number="MFGH-US-0003",
                      study_description="Echocardiogram", rows=96, columns=96, frames=8, implicit_vr=True))
    specs.append(Spec(modality="DX", patient_id="MFGH-000103", patient_name="陈^杰", patient_sex="M",
                      birth_date="19520105", study_date=today - timedelta(days=30), accession_number="MFGH-DX-0004",
                      study_description="Left hand", rows=160, columns=128))
    return specs


async def seed(services: "Services") -> int:
    """Ingest the demo instances once (skipped when MFGH has any study); returns how many."""
    async with services.db.connect() as conn:
        institution_id = (await conn.execute(sa.select(institutions.c.id).where(institutions.c.code == "MFGH"))).scalar()
        if institution_id is None or (await conn.execute(sa.select(imaging_studies.c.id).where(
                imaging_studies.c.institution_id == institution_id).limit(1))).first():
            return 0
    stored = 0
    for spec in demo_instances(date.today()):
        fd, name = tempfile.mkstemp(prefix="medflow-demo-", suffix=".dcm")
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                data = make(spec)
                out.write(data)
            outcome = await ingest_file(services, institution_id, path, len(data))
            stored += outcome.status == "stored"
        finally:
            path.unlink(missing_ok=True)
    return stored
