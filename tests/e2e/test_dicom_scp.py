"""The DICOM C-STORE receiver: real associations from a pynetdicom client. In-process on
embedded and real adapters (the instance travels incoming bucket → arrival event →
imaging_arrivals → rows), and inside the run command's process (``serve --demo
--dicom-port``), where the demo studies are searchable too."""

from __future__ import annotations

import asyncio
import io
import json
import time

import httpx
import pydicom
import pytest
import sqlalchemy as sa
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, UltrasoundMultiFrameImageStorage, Verification

from medflow.db.schema import imaging_instances
from medflow.imaging.scp import StorageSCP
from imaging_support import instance
from records_support import institution
from support_processes import free_port, running, serve_command


def _dataset(data: bytes) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(data))


def _send(port: int, datasets: list[pydicom.Dataset]) -> tuple[int, list[int]]:
    """(C-ECHO status, C-STORE statuses) over one association."""
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(Verification)
    ae.add_requested_context(CTImageStorage)
    ae.add_requested_context(UltrasoundMultiFrameImageStorage)
    assoc = ae.associate("127.0.0.1", port, ae_title="MEDFLOW")
    assert assoc.is_established
    try:
        echo = assoc.send_c_echo().Status
        stores = [assoc.send_c_store(ds).Status for ds in datasets]
    finally:
        assoc.release()
    return echo, stores


async def _instances(platform, sop_uid: str) -> int:
    async with platform.services.db.connect() as conn:
        return (await conn.execute(sa.select(sa.func.count()).select_from(imaging_instances)
                                   .where(imaging_instances.c.sop_instance_uid == sop_uid))).scalar_one()


async def test_c_store_and_c_echo_store_the_instance_through_the_arrival_event(platform):
    institution_id, _ = await institution(platform, "MFGH")
    scp = StorageSCP(platform.services, institution_id, asyncio.get_running_loop())
    port = scp.start("127.0.0.1", 0)
    try:
        good = _dataset(instance(patient_id="SCP-1", patient_name="王^芳"))
        cine = _dataset(instance(patient_id="SCP-1", modality="US", frames=3, implicit_vr=True))
        broken = _dataset(instance(patient_id="SCP-1"))
        del broken.StudyInstanceUID
        echo, stores = await asyncio.to_thread(_send, port, [good, cine, broken, good])
        assert echo == 0x0000
        assert stores[:2] == [0x0000, 0x0000] and stores[3] == 0x0000   # a re-send is accepted (idempotent)
        assert 0xC000 <= stores[2] <= 0xCFFF                            # missing UID: cannot understand
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if await _instances(platform, good.SOPInstanceUID) and await _instances(platform, cine.SOPInstanceUID):
                break
            await asyncio.sleep(0.3)
        assert await _instances(platform, good.SOPInstanceUID) == 1
        assert await _instances(platform, cine.SOPInstanceUID) == 1
        deadline = time.monotonic() + 30                             # incoming copies removed once ingested
        while await platform.services.objects.list("incoming", prefix=f"{institution_id}/") and time.monotonic() < deadline:
            await asyncio.sleep(0.3)
        assert await platform.services.objects.list("incoming", prefix=f"{institution_id}/") == []
    finally:
        scp.stop()


def test_the_run_command_starts_the_receiver_and_shows_demo_images(tmp_path):
    port, dicom_port = free_port(), free_port()
    data = tmp_path / "data"
    env = {"MEDFLOW_DATA_DIR": str(data), "MEDFLOW_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
           "MEDFLOW_ARGON2_TIME_COST": "1", "MEDFLOW_ARGON2_MEMORY_KIB": "8192", "MEDFLOW_ARGON2_PARALLELISM": "1"}
    base = f"http://127.0.0.1:{port}"
    with running(serve_command(port, "--demo", "--dicom-port", str(dicom_port)), env, tmp_path / "server.log",
                 f"{base}/healthz", timeout_s=120):
        logins = {e["username"]: e for e in json.loads((data / "demo-logins.json").read_text())}
        login = logins["dr.wang"]
        token = httpx.post(f"{base}/api/auth/login", json={k: login[k] for k in ("institution_code", "username", "password")},
                           timeout=30).json()["access_token"]
        headers = {"authorization": f"Bearer {token}"}
        studies = httpx.get(f"{base}/api/imaging_search/studies", headers=headers, timeout=30).json()["items"]
        assert {m for s in studies for m in s["modalities"]} >= {"CT", "CR", "US", "DX"}
        assert any(s["patient_name"].startswith("Zhang Wei") for s in studies)
        sent = _dataset(instance(patient_id="MFGH-000103", patient_name="Chen^Jie", accession_number="SCP-RUN"))
        echo, stores = _send(dicom_port, [sent])
        assert (echo, stores) == (0x0000, [0x0000])
        deadline = time.monotonic() + 30
        found = []
        while not found and time.monotonic() < deadline:
            found = httpx.get(f"{base}/api/imaging_search/studies", params={"AccessionNumber": "SCP-RUN"},
                              headers=headers, timeout=30).json()["items"]
            time.sleep(0.3)
        assert found and found[0]["mrn"] == "MFGH-000103"


def test_the_standalone_receiver_process_stores_what_it_receives(tmp_path):
    """``medflow dicom-scp`` alone (the cluster's long-running Deployment), here on the
    embedded adapters: it delivers the arrival to imaging_arrivals in its own process."""
    import socket
    import sqlite3
    import subprocess
    import sys
    from pathlib import Path

    data = tmp_path / "data"
    env = {"MEDFLOW_DATA_DIR": str(data)}
    seed = ("import asyncio\nfrom medflow.bootstrap import build_services\nfrom medflow.db import migrate\n"
            "from medflow.demo import seed_institutions\n"
            "async def main():\n    s = build_services()\n    migrate.upgrade(s.settings.resolved_database_url())\n"
            "    await s.objects.ensure_buckets()\n    await seed_institutions(s)\n    await s.close()\n"
            "asyncio.run(main())\n")
    from support_processes import _clean_env
    subprocess.run([sys.executable, "-c", seed], env=_clean_env(env), check=True, capture_output=True, timeout=120)
    port = free_port()
    command = [str(Path(sys.executable).parent / "medflow"), "dicom-scp", "--institution", "MFGH", "--host", "127.0.0.1",
               "--port", str(port)]
    with running(command, env, tmp_path / "scp.log"):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        sent = _dataset(instance(patient_id="ALONE-1"))
        assert _send(port, [sent]) == (0x0000, [0x0000])
        deadline, count = time.monotonic() + 30, 0
        while not count and time.monotonic() < deadline:
            with sqlite3.connect(data / "medflow.sqlite3") as db:
                count = db.execute("SELECT COUNT(*) FROM imaging_instances WHERE sop_instance_uid = ?",
                                   (str(sent.SOPInstanceUID),)).fetchone()[0]
            time.sleep(0.3)
        assert count == 1
