"""A hospital system announces an object it put in the incoming bucket: the CloudEvent is
delivered over HTTP to imaging_arrivals (as Knative or the relay deliver it) and ingested
like an upload. Knative's contract: 204 done (also on redelivery, with one effect), 400 for
an event that can never succeed (missing object, not DICOM, invalid data)."""

from __future__ import annotations

import sqlalchemy as sa

from medflow.bus.events import make_event, to_http
from medflow.db.schema import imaging_instances
from medflow.imaging.arrivals import ARRIVED
from imaging_support import instance
from records_support import institution


async def _deliver(platform, data: dict):
    headers, body = to_http(make_event(ARRIVED, "/medflow/pacs_gateway", data["key"] if "key" in data else "-", data))
    return await platform.post("/api/imaging_arrivals/", headers=headers, content=body)


async def _count(platform) -> int:
    async with platform.services.db.connect() as conn:
        return (await conn.execute(sa.select(sa.func.count()).select_from(imaging_instances))).scalar_one()


async def test_an_announced_object_is_ingested_once_and_bad_announcements_are_dead_lettered(platform):
    institution_id, _ = await institution(platform, "MFGH")
    objects = platform.services.objects
    await objects.put("incoming", "gateway/a.dcm", instance(patient_id="EV-1"), "application/dicom")
    event = {"institution_id": institution_id, "bucket": "incoming", "key": "gateway/a.dcm"}
    assert (await _deliver(platform, event)).status_code == 204
    assert (await _deliver(platform, event)).status_code == 204          # redelivered: one effect
    assert await _count(platform) == 1
    assert (await objects.head("incoming", "gateway/a.dcm")).size > 0    # the hospital's object is left alone

    await objects.put("incoming", "gateway/b.bin", b"not dicom" * 100)
    for bad in ({**event, "key": "gateway/missing.dcm"}, {**event, "key": "gateway/b.bin"},
                {**event, "key": "../../etc/passwd"}, {**event, "institution_id": "0" * 26},
                {"institution_id": institution_id, "bucket": "dicom", "key": "x"}):
        response = await _deliver(platform, bad)
        assert response.status_code == 400, (bad, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert await _count(platform) == 1
