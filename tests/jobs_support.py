"""Helpers of the bulk-jobs tests: waiting for a job, making many cases fast."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone

from bus_diagnostics import consumers_of
from medflow.db.schema import cases
from medflow.ids import new_id, utcnow

FINISHED = ("succeeded", "failed", "cancelled", "expired")


async def wait_for_job(platform, actor, job_id: str, timeout_s: float = 90.0, states=FINISHED) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        body = (await platform.get(f"/api/jobs/jobs/{job_id}", headers=actor.headers)).json()
        if body["state"] in states:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"job still {body['state']} after {timeout_s}s: {body}; consumers: {consumers_of(platform)}")
        await asyncio.sleep(0.05)


async def insert_cases(db, institution_id: str, patient_id: str, count: int, *, modality: str = "LAB",
                       chunk: int = 2000) -> list[str]:
    """``count`` cases straight into the table (the API would take minutes for thousands)."""
    ids, now = [], utcnow()
    base = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for start in range(0, count, chunk):
        rows = []
        for n in range(start, min(count, start + chunk)):
            case_id = new_id()
            ids.append(case_id)
            rows.append({"id": case_id, "institution_id": institution_id, "patient_id": patient_id,
                         "exam_type": "urinalysis", "modality": modality, "exam_time": base + timedelta(minutes=n),
                         "status": "final", "annotation_status": "none", "quality_label": "unchecked",
                         "title": f"Bulk {n}", "diagnosis_codes": [], "version": 1, "created_at": now, "updated_at": now})
        async with db.transaction() as conn:
            await conn.execute(cases.insert(), rows)
    return ids
