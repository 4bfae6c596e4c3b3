"""Batch uploads are read as a stream and ingested in parallel, never more than
``MEDFLOW_IMAGING_CONCURRENCY`` at once; answers keep the order of the parts."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from medflow.config import Settings
from medflow.errors import Problem
from medflow.imaging import upload
from medflow.imaging.ingest import Outcome

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from imaging_support import multipart  # noqa: E402


async def _chunks(body: bytes, size: int = 1000):
    for start in range(0, len(body), size):
        yield body[start:start + size]


async def test_parts_are_ingested_in_parallel_within_the_bound_and_answered_in_order(tmp_path, monkeypatch):
    running, peak, seen = 0, 0, []

    async def fake_ingest(services, institution_id, path, size):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        seen.append(Path(path).read_bytes())
        await asyncio.sleep(0.05 if len(seen) % 2 else 0.01)
        running -= 1
        return Outcome("stored", sop_instance_uid=Path(path).read_bytes().decode())

    monkeypatch.setattr(upload, "ingest_file", fake_ingest)
    services = SimpleNamespace(settings=Settings(data_dir=tmp_path, imaging_concurrency=3))
    body, content_type = multipart([(f"1.2.{n}".encode(), {}) for n in range(10)])
    outcomes = await upload.ingest_body(services, "I" * 26, content_type, _chunks(body))
    assert [o.sop_instance_uid for o in outcomes] == [f"1.2.{n}" for n in range(10)]
    assert 1 < peak <= 3


async def test_spool_files_are_removed_and_an_oversized_body_is_413(tmp_path, monkeypatch):
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    async def fake_ingest(services, institution_id, path, size):
        return Outcome("stored")

    monkeypatch.setattr(upload, "ingest_file", fake_ingest)
    services = SimpleNamespace(settings=Settings(data_dir=tmp_path / "d", imaging_max_upload_bytes=5000))
    body, content_type = multipart([(b"x" * 1000, {}) for _ in range(3)])
    assert len(await upload.ingest_body(services, "I" * 26, content_type, _chunks(body))) == 3
    assert list(tmp_path.glob("medflow-dicom-*")) == []
    big, content_type = multipart([(b"x" * 4000, {}) for _ in range(3)])
    with pytest.raises(Problem) as caught:
        await upload.ingest_body(services, "I" * 26, content_type, _chunks(big))
    assert caught.value.status == 413
    assert list(tmp_path.glob("medflow-dicom-*")) == []
