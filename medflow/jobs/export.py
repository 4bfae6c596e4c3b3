"""Export jobs: an offline package (xlsx or CSV + manifest.json with checksums, zipped) in
the object store, registered as a backup batch (who, when, what, checksum, size).

Full exports hold every case the filter names (soft-deleted ones with their ``deleted_at``);
incremental ones the cases changed since the institution's previous batch. Rows are read
in bounded keyset batches (id order) and written as they come: XlsxWriter's constant-memory
mode or the csv module, so memory does not grow with the row count. An export interrupted
by a crash starts its file again on the next delivery (the file lives on the worker's
disk); it registers once (``backup_batches.job_id`` is unique).
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import tempfile
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from medflow.db.schema import backup_batches, cases, jobs
from medflow.ids import new_id, utcnow
from medflow.records.export import cell_value, open_workbook

EXPORT_COLUMNS = ("id", "patient_id", "exam_type", "modality", "exam_time", "department_id", "doctor_id", "status",
                  "annotation_status", "quality_label", "title", "diagnosis_codes", "version", "created_at",
                  "updated_at", "deleted_at")
BUCKET = "exports"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _Writer:
    def __init__(self, path: Path, fmt: str) -> None:
        self.fmt, self.path, self.rows = fmt, path, 0
        if fmt == "xlsx":
            self.book = open_workbook(path)
            self.sheet = self.book.add_worksheet("cases")
            self.sheet.write_row(0, 0, EXPORT_COLUMNS, self.book.add_format({"bold": True}))
        else:
            self.file = path.open("w", newline="", encoding="utf-8")
            self.csv = csv.writer(self.file)
            self.csv.writerow(EXPORT_COLUMNS)

    def write(self, row: Any) -> None:
        self.rows += 1
        values = [cell_value(getattr(row, c)) for c in EXPORT_COLUMNS]
        if self.fmt == "xlsx":
            self.sheet.write_row(self.rows, 0, values)
        else:
            self.csv.writerow(["" if v is None else _csv_safe(v) for v in values])

    def close(self) -> None:
        if self.fmt == "xlsx":
            self.book.close()
        else:
            self.file.close()


def _csv_safe(value: Any) -> Any:
    """Spreadsheet formula injection: a text cell starting with = + - @ is prefixed with '."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


async def _since(db, job: dict[str, Any]) -> datetime | None:
    """Incremental exports start where the institution's previous batch ended."""
    if job["params"]["options"].get("mode") != "incremental":
        return None
    async with db.connect() as conn:
        return (await conn.execute(sa.select(sa.func.max(backup_batches.c.upto))
                                   .where(backup_batches.c.institution_id == job["institution_id"]))).scalar()


async def run_export(services, job: dict[str, Any]) -> None:
    from medflow.jobs.model import case_conditions
    from medflow.jobs.worker import _finish
    db, settings = services.db, services.settings
    async with db.connect() as conn:
        registered = (await conn.execute(sa.select(backup_batches).where(backup_batches.c.job_id == job["id"]))).mappings().first()
    if registered is not None:     # registered by a run that died before marking the job
        await _finish(services, job, "succeeded", None, {"backup_batch_id": registered["id"], "rows": registered["rows"]})
        return
    options = job["params"]["options"]
    fmt, mode = options.get("format", "xlsx"), options.get("mode", "full")
    since, upto = await _since(db, job), job["created_at"]
    conditions = case_conditions(job["institution_id"], job["params"]) + [cases.c.updated_at <= upto]
    if since is not None:
        conditions.append(cases.c.updated_at > since)
    workdir = Path(tempfile.mkdtemp(prefix="medflow-job-"))
    try:
        data_path = workdir / f"cases.{fmt}"
        writer = _Writer(data_path, fmt)
        try:
            last = None
            while True:
                where = conditions + ([cases.c.id > last] if last else [])
                async with db.connect() as conn:
                    rows = (await conn.execute(sa.select(*(cases.c[c] for c in EXPORT_COLUMNS if c != "diagnosis_codes"),
                                                         cases.c.diagnosis_codes)
                                               .where(*where).order_by(cases.c.id).limit(settings.job_batch_size))).all()
                for row in rows:
                    writer.write(row)
                if rows:
                    last = rows[-1].id
                    async with db.transaction() as conn:
                        state = (await conn.execute(sa.select(jobs.c.state).where(jobs.c.id == job["id"]))).scalar_one()
                        if state != "running":
                            return                      # cancelled: no package
                        await conn.execute(jobs.update().where(jobs.c.id == job["id"]).values(
                            done=writer.rows, checkpoint=last, batches=jobs.c.batches + 1, updated_at=utcnow()))
                if len(rows) < settings.job_batch_size:
                    break
                if utcnow() >= job["deadline_at"]:
                    await _finish(services, job, "expired", f"deadline passed after {writer.rows} rows written")
                    return
        finally:
            writer.close()
        batch_id = new_id()
        manifest = {"format_version": 1, "backup_batch_id": batch_id, "job_id": job["id"],
                    "institution_id": job["institution_id"], "created_by": job["submitted_by"],
                    "created_at": utcnow().isoformat(), "mode": mode, "format": fmt,
                    "since": since.isoformat() if since else None, "upto": upto.isoformat(),
                    "filter": job["params"].get("filter"), "rows": writer.rows,
                    "files": [{"name": data_path.name, "sha256": _sha256(data_path), "size": data_path.stat().st_size,
                               "columns": list(EXPORT_COLUMNS)}]}
        manifest_path = workdir / "manifest.json"
        manifest_path.write_text(json.dumps(manifest, indent=2))
        package = workdir / "package.zip"
        with zipfile.ZipFile(package, "w", compression=zipfile.ZIP_DEFLATED) as z:
            z.write(manifest_path, "manifest.json")
            z.write(data_path, data_path.name)
        sha, size = _sha256(package), package.stat().st_size
        key = f"backups/{job['institution_id']}/{batch_id}.zip"
        with package.open("rb") as f:
            await services.objects.put(BUCKET, key, f, content_type="application/zip",
                                       metadata={"sha256": sha, "job": job["id"]})
        async with db.transaction() as conn:
            await conn.execute(backup_batches.insert().values(
                id=batch_id, institution_id=job["institution_id"], job_id=job["id"], mode=mode, format=fmt,
                created_by=job["submitted_by"], created_at=utcnow(), since=since, upto=upto, rows=writer.rows,
                bucket=BUCKET, object_key=key, sha256=sha, size_bytes=size))
        job = {**job, "done": writer.rows}
        await _finish(services, job, "succeeded", None, {"backup_batch_id": batch_id, "rows": writer.rows,
                                                         "sha256": sha, "size_bytes": size})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def list_batches(db, institution_id: str, limit: int = 50) -> list[dict[str, Any]]:
    async with db.connect() as conn:
        rows = (await conn.execute(sa.select(backup_batches).where(backup_batches.c.institution_id == institution_id)
                                   .order_by(backup_batches.c.created_at.desc(), backup_batches.c.id.desc())
                                   .limit(limit))).mappings().all()
    return [dict(r) for r in rows]


async def get_batch(db, institution_id: str, batch_id: str) -> dict[str, Any] | None:
    async with db.connect() as conn:
        row = (await conn.execute(sa.select(backup_batches).where(backup_batches.c.id == batch_id,
                                                                  backup_batches.c.institution_id == institution_id))).mappings().first()
    return dict(row) if row else None
