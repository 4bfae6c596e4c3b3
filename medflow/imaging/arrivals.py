"""Ingesting an object announced by a hospital system or the C-STORE receiver.

The event ``org.medflow.imaging.instance.arrived.v1`` names an object in the ``incoming``
bucket; it is copied to a spool file, ingested exactly as an upload is (so a re-delivered
event is a ``duplicate`` and changes nothing), and removed from ``incoming`` when the event
asks for it. An object that is missing or is not a storable instance can never succeed:
``PermanentError`` (400, dead-lettered). Store or database outages are retried.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from medflow.bus.events import make_event
from medflow.db.schema import institutions
from medflow.errors import PermanentError
from medflow.imaging.ingest import Outcome, ingest_file
from medflow.storage.ports import InvalidObjectKey, ObjectNotFound

if TYPE_CHECKING:
    from medflow.bootstrap import Services

ARRIVED = "org.medflow.imaging.instance.arrived.v1"
INCOMING = "incoming"


async def announce(services: "Services", source: str, institution_id: str, key: str, remove_source: bool) -> str:
    """Publish the arrival of ``incoming/<key>``; returns the event id."""
    data = {"institution_id": institution_id, "bucket": INCOMING, "key": key, "remove_source": remove_source}
    services.catalogue.validate(ARRIVED, data)
    event = make_event(ARRIVED, source, key, data)
    await services.bus.publish(event)
    return event["id"]


async def ingest_arrival(services: "Services", data: dict[str, Any]) -> Outcome:
    institution_id, key = data["institution_id"], data["key"]
    async with services.db.connect() as conn:
        if (await conn.execute(sa.select(institutions.c.id).where(institutions.c.id == institution_id))).first() is None:
            raise PermanentError("unknown institution")
    fd, name = tempfile.mkstemp(prefix="medflow-arrival-", suffix=".dcm")
    path, size = Path(name), 0
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                async for chunk in services.objects.stream(INCOMING, key):
                    size += len(chunk)
                    if size > services.settings.imaging_max_instance_bytes:
                        raise PermanentError("too-large")
                    out.write(chunk)
            except (ObjectNotFound, InvalidObjectKey):
                raise PermanentError("the announced object does not exist") from None
        outcome = await ingest_file(services, institution_id, path, size)
    finally:
        path.unlink(missing_ok=True)
    if outcome.status == "rejected":
        raise PermanentError(f"rejected: {outcome.reason}")
    if data.get("remove_source"):
        await services.objects.delete(INCOMING, key)
    return outcome
