"""The DICOM C-STORE receiver (storage SCP) for modalities and PACS that push over DIMSE.

A long-running TCP process (not scale-to-zero): ``medflow dicom-scp``, or started inside
``medflow serve --dicom-port`` for the embedded run. It answers C-ECHO, and for each
C-STORE checks the instance as an upload is checked (``parse_file``), writes it to the
``incoming`` bucket, and announces it with ``org.medflow.imaging.instance.arrived.v1``
(``remove_source``), which ``imaging_arrivals`` ingests — the same path a hospital
system's announcement takes. The status goes back only once the object is durably stored
and the event published: 0x0000 success, 0xC000-range for an instance that cannot be
stored (with no patient data in the log), 0xA700 when storage is unavailable.

pynetdicom runs each association in its own thread; the store and the bus belong to the
event loop given at start, so the handler hands them the work and waits for it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification

from medflow.dicom.parse import Rejected, parse_file
from medflow.ids import new_id
from medflow.imaging.arrivals import INCOMING, announce

if TYPE_CHECKING:
    from medflow.bootstrap import Services

log = logging.getLogger("medflow.dicom_scp")
SOURCE = "/medflow/dicom_scp"
SUCCESS, CANNOT_UNDERSTAND, OUT_OF_RESOURCES = 0x0000, 0xC000, 0xA700
_REASON_STATUS = {"missing-uid": 0xC001, "invalid-uid": 0xC002, "truncated": 0xC003, "malformed-dicom": 0xC004,
                  "not-dicom": 0xC005, "unsupported-transfer-syntax": 0xC006, "too-large": 0xA701}


class StorageSCP:
    def __init__(self, services: "Services", institution_id: str, loop: asyncio.AbstractEventLoop,
                 ae_title: str | None = None) -> None:
        self.services, self.institution_id, self.loop = services, institution_id, loop
        self.ae = AE(ae_title=ae_title or services.settings.dicom_ae_title)
        self.ae.supported_contexts = AllStoragePresentationContexts
        self.ae.add_supported_context(Verification)
        self.ae.maximum_pdu_size = 0           # no limit on what peers send per PDU
        self.server = None

    def start(self, host: str, port: int) -> int:
        """Listen (in pynetdicom's threads); returns the bound port (``port`` 0 picks one)."""
        self.server = self.ae.start_server((host, port), block=False, evt_handlers=[
            (evt.EVT_C_STORE, self._on_store), (evt.EVT_C_ECHO, self._on_echo)])
        bound = self.server.server_address[1]
        log.info("dicom scp listening", extra={"port": bound, "ae_title": self.ae.ae_title})
        return bound

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server = None

    def _on_echo(self, event) -> int:
        return SUCCESS

    def _on_store(self, event) -> int:
        data = event.encoded_dataset(include_meta=True)
        if len(data) > self.services.settings.imaging_max_instance_bytes:
            return _REASON_STATUS["too-large"]
        fd, name = tempfile.mkstemp(prefix="medflow-cstore-", suffix=".dcm")
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            try:
                parse_file(path, len(data))
            except Rejected as exc:
                log.warning("c-store rejected", extra={"reason": exc.reason})
                return _REASON_STATUS.get(exc.reason, CANNOT_UNDERSTAND)
            future = asyncio.run_coroutine_threadsafe(self._store(path), self.loop)
            try:
                future.result(timeout=120)
            except Exception as exc:
                log.error("c-store failed", extra={"error_type": type(exc).__name__})
                return OUT_OF_RESOURCES
            return SUCCESS
        finally:
            path.unlink(missing_ok=True)

    async def _store(self, path: Path) -> None:
        key = f"{self.institution_id}/scp/{new_id()}.dcm"
        with open(path, "rb") as stream:
            await self.services.objects.put(INCOMING, key, stream, "application/dicom")
        await announce(self.services, SOURCE, self.institution_id, key, remove_source=True)


async def institution_id_of(services: "Services", code: str) -> str:
    import sqlalchemy as sa
    from medflow.db.schema import institutions
    async with services.db.connect() as conn:
        found = (await conn.execute(sa.select(institutions.c.id).where(institutions.c.code == code))).scalar()
    if found is None:
        raise SystemExit(f"no institution with code {code!r}")
    return found
