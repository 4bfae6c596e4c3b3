"""Turning an upload body into instances, streamed: never a whole file in memory.

Bodies: one ``application/dicom`` instance, or many as ``multipart/related;
type="application/dicom"`` (DICOMweb STOW-RS) or ``multipart/form-data``. Each part is
spooled to a temporary file as it arrives (python-multipart's streaming parser) and handed
to ``ingest_file``; at most ``imaging_concurrency`` parts are spooled or being ingested at
once, which also holds back reading the body (back-pressure). Each part answers on its own:
a part that is not DICOM (a zip, say), too large, or whose file name carries a path is
rejected with its reason while the others are stored. The whole body is bounded by
``imaging_max_upload_bytes`` (413).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, AsyncIterator

from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header

from medflow.errors import bad_request, too_large, unsupported_media_type
from medflow.imaging.ingest import Outcome, ingest_file

if TYPE_CHECKING:
    from medflow.bootstrap import Services

DICOM = "application/dicom"
MULTIPART = ("multipart/related", "multipart/form-data")
ACCEPTED = (DICOM, *MULTIPART)
_PART_TYPES = {"", DICOM, "application/octet-stream"}


@dataclass
class _Part:
    index: int
    headers: dict[str, str] = field(default_factory=dict)
    path: Path | None = None
    handle: object | None = None
    size: int = 0
    rejected: Outcome | None = None


def _spool() -> tuple[Path, object]:
    fd, name = tempfile.mkstemp(prefix="medflow-dicom-", suffix=".part")
    return Path(name), os.fdopen(fd, "wb")


def _check_part(part: _Part, max_bytes: int) -> Outcome | None:
    media = part.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in _PART_TYPES:
        return Outcome.rejected("unsupported-media-type", "A part must be application/dicom.")
    _, options = parse_options_header(part.headers.get("content-disposition", ""))
    filename = options.get(b"filename", b"").decode("utf-8", "replace")
    if filename and ("/" in filename or "\\" in filename or ".." in filename or "\x00" in filename):
        return Outcome.rejected("invalid-filename", "A file name may not contain a path.")
    return None


async def ingest_body(services: "Services", institution_id: str, content_type: str,
                      stream: AsyncIterator[bytes]) -> list[Outcome]:
    """Every instance of an upload body, in the order they came."""
    media, options = parse_options_header(content_type or "")
    media_type = media.decode("latin-1").lower()
    limit = services.settings.imaging_max_upload_bytes
    if media_type == DICOM:
        return [await _single(services, institution_id, stream, limit)]
    if media_type not in MULTIPART:
        raise unsupported_media_type(" or ".join(ACCEPTED))
    boundary = options.get(b"boundary")
    if not boundary or len(boundary) > 200:
        raise bad_request("A multipart body needs a boundary.", code="malformed-multipart")
    inner = options.get(b"type", b"").decode("latin-1").lower()
    if media_type == "multipart/related" and inner and inner != DICOM:
        raise unsupported_media_type('multipart/related; type="application/dicom"')
    return await _multipart(services, institution_id, boundary, stream, limit)


async def _single(services: "Services", institution_id: str, stream: AsyncIterator[bytes], limit: int) -> Outcome:
    path, handle = _spool()
    size = 0
    try:
        with handle:
            async for chunk in stream:
                size += len(chunk)
                if size > limit:
                    raise too_large(limit)
                if size <= services.settings.imaging_max_instance_bytes:
                    handle.write(chunk)
        return await ingest_file(services, institution_id, path, size)
    finally:
        path.unlink(missing_ok=True)


async def _multipart(services: "Services", institution_id: str, boundary: bytes, stream: AsyncIterator[bytes],
                     limit: int) -> list[Outcome]:
    max_instance = services.settings.imaging_max_instance_bytes
    finished: list[_Part] = []
    parts: list[_Part] = []
    state: dict = {"part": None, "field": b"", "value": b""}

    def on_part_begin() -> None:
        state["part"] = _Part(len(parts))
        parts.append(state["part"])

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        state["part"].headers[state["field"].decode("latin-1").lower()] = state["value"].decode("latin-1")
        state["field"], state["value"] = b"", b""

    def on_headers_finished() -> None:
        part: _Part = state["part"]
        part.rejected = _check_part(part, max_instance)
        if part.rejected is None:
            part.path, part.handle = _spool()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        part: _Part = state["part"]
        part.size += end - start
        if part.handle is not None:
            if part.size > max_instance:
                part.handle.close()
                part.handle = None
                part.rejected = Outcome.rejected("too-large", f"An instance may be at most {max_instance} bytes.")
            else:
                part.handle.write(data[start:end])

    def on_part_end() -> None:
        part: _Part = state["part"]
        if part.handle is not None:
            part.handle.close()
            part.handle = None
        finished.append(part)

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished, "on_part_data": on_part_data,
        "on_part_end": on_part_end})
    gate = asyncio.Semaphore(services.settings.imaging_concurrency)
    tasks: dict[int, asyncio.Task] = {}
    outcomes: dict[int, Outcome] = {}

    async def run(part: _Part) -> Outcome:
        try:
            return await ingest_file(services, institution_id, part.path, part.size)
        finally:
            part.path.unlink(missing_ok=True)
            gate.release()

    async def dispatch() -> None:
        while finished:
            part = finished.pop(0)
            if part.rejected is not None:
                outcomes[part.index] = part.rejected
                if part.path:
                    part.path.unlink(missing_ok=True)
                continue
            await gate.acquire()
            tasks[part.index] = asyncio.create_task(run(part))

    size = 0
    try:
        async for chunk in stream:
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            try:
                parser.write(chunk)
            except MultipartParseError:
                raise bad_request("The multipart body is malformed.", code="malformed-multipart") from None
            await dispatch()
        parser.finalize()
        await dispatch()
        for index, task in tasks.items():
            outcomes[index] = await task
    finally:   # on any error: stop what runs, then no spool file outlives the request
        for task in tasks.values():
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        for part in parts:
            if part.handle is not None:
                part.handle.close()
            if part.path is not None:
                part.path.unlink(missing_ok=True)
    if not parts:
        raise bad_request("The multipart body holds no parts.", code="malformed-multipart")
    return [outcomes.get(p.index, Outcome.rejected("truncated", "The part ended before the body did.")) for p in parts]
