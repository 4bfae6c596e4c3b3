"""imaging_arrivals: ingests a DICOM object announced by ``org.medflow.imaging.instance.arrived.v1``
(hospital systems, the C-STORE receiver) exactly as an upload is (CloudEvent).

Idempotent: a re-delivered event finds the instance stored and changes nothing. A missing
object or one that is not a storable instance answers 400 (dead-lettered, not retried).
Use case: ``medflow.imaging.arrivals``.
"""

from __future__ import annotations

from medflow.imaging.arrivals import ARRIVED, ingest_arrival
from medflow.runtime.entry import entrypoint
from medflow.runtime.spec import EventCall, EventFunction

spec = EventFunction("imaging_arrivals", "DICOM arrivals from hospital systems and the C-STORE receiver",
                     accepts=(ARRIVED,))


@spec.on_event
async def on_arrival(call: EventCall) -> None:
    await ingest_arrival(call.services, call.event.data)


imaging_arrivals = entrypoint(spec)
