"""Nothing half-stored: an ingestion killed (SIGKILL, a real process) between writing the
object and inserting its row leaves an object without a row and never a row without an
object; retrying the upload, or the reconciler, brings objects and rows back to one to one.
On embedded (SQLite + local folder) and real (MariaDB + MinIO) adapters."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from medflow.db.schema import imaging_instances
from medflow.imaging.ingest import BUCKET, ingest_file, reconcile
from imaging_support import instance
from records_support import institution

WORKER = Path(__file__).with_name("imaging_crash_worker.py")


def _env(services) -> dict[str, str]:
    s = services.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDFLOW_")}
    env["MEDFLOW_DATA_DIR"] = str(s.data_dir)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    if s.database_url:
        env["MEDFLOW_DATABASE_URL"] = s.database_url.get_secret_value()
    if s.s3_endpoint:
        env.update(MEDFLOW_S3_ENDPOINT=s.s3_endpoint, MEDFLOW_S3_ACCESS_KEY=s.s3_access_key.get_secret_value(),
                   MEDFLOW_S3_SECRET_KEY=s.s3_secret_key.get_secret_value(), MEDFLOW_S3_REGION=s.s3_region,
                   MEDFLOW_S3_BUCKET_PREFIX=s.s3_bucket_prefix)
    return env


def _kill_after_object(services, institution_id: str, path: Path) -> None:
    proc = subprocess.Popen([sys.executable, str(WORKER), institution_id, str(path)], env=_env(services),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = proc.stdout.readline()
        assert line.strip() == b"OBJECT-STORED", proc.stderr.read()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL


async def _state(services, institution_id: str) -> tuple[set[str], set[str]]:
    objects = {o.key for o in await services.objects.list(BUCKET, prefix=f"{institution_id}/")}
    async with services.db.connect() as conn:
        rows = set((await conn.execute(sa.select(imaging_instances.c.object_key))).scalars())
    return objects, rows


async def test_a_killed_ingestion_leaves_no_row_without_object_and_recovers(platform, tmp_path):
    services = platform.services
    institution_id, _ = await institution(platform, "MFGH")
    files = []
    for n in range(2):
        path = tmp_path / f"ct{n}.dcm"
        path.write_bytes(instance(patient_id="CRASH-1", instance_number=n + 1))
        files.append(path)

    _kill_after_object(services, institution_id, files[0])
    objects, rows = await _state(services, institution_id)
    assert len(objects) == 1 and rows == set()          # an object without a row, never the reverse

    # recovery 1: the client retries the same instance — stored, one object, one row
    outcome = await ingest_file(services, institution_id, files[0], files[0].stat().st_size)
    assert outcome.status == "stored"
    objects, rows = await _state(services, institution_id)
    assert objects == rows and len(rows) == 1

    # recovery 2: never retried — the reconciler removes the orphan, and only it
    _kill_after_object(services, institution_id, files[1])
    objects, rows = await _state(services, institution_id)
    assert len(objects) == 2 and len(rows) == 1
    assert await reconcile(services, institution_id, older_than_s=0) == 1
    objects, rows = await _state(services, institution_id)
    assert objects == rows and len(rows) == 1
