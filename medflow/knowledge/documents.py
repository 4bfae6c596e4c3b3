"""The knowledge base of an institution: its administrators upload, replace and delete
documents; ingestion (the ``knowledge_ingest`` event function) extracts, chunks, embeds and
indexes them.

Visibility: a document answers questions from ``current_version`` only. Ingestion writes
the chunks of a new version first (invisible), then publishes the index generation and
switches ``current_version`` in one transaction; so a half-ingested version never shows,
and a failed one leaves the previous version answering. Deleting hides the document at
once (retrieval keeps only chunks of current versions of live documents); the event that
follows takes its rows out of the index and SQL.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from medflow.bus.catalogue import Catalogue
from medflow.bus.events import make_event
from medflow.bus.ports import EventBus
from medflow.db.engine import Database
from medflow.db.schema import knowledge_chunks, knowledge_documents
from medflow.errors import Problem, not_found
from medflow.ids import new_id, utcnow
from medflow.knowledge import index as vector_index
from medflow.knowledge.encoder import shared_encoder
from medflow.knowledge.extract import DocumentRejected, chunk, media_type_for, sections_of
from medflow.pagination import decode_time_cursor, encode_time_cursor
from medflow.storage.ports import ObjectNotFound, ObjectStore

log = logging.getLogger("medflow.knowledge")

UPLOADED = "org.medflow.knowledge.document.uploaded.v1"
DELETED = "org.medflow.knowledge.document.deleted.v1"
SOURCE = "/medflow/knowledge"
_INSERT_BATCH = 500


@dataclass(frozen=True)
class Document:
    id: str
    institution_id: str
    title: str
    filename: str
    media_type: str
    size_bytes: int
    status: str
    latest_version: int
    current_version: int | None
    chunks: int
    error_code: str | None
    uploaded_by: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class DocumentPage:
    items: tuple[Document, ...]
    next_cursor: str | None


@dataclass(frozen=True)
class Upload:
    title: str
    filename: str
    content: bytes
    media_type: str | None = None


_COLUMNS = [getattr(knowledge_documents.c, f) for f in Document.__dataclass_fields__]


def _document(row) -> Document:
    return Document(**{f: getattr(row, f) for f in Document.__dataclass_fields__})


def object_key(institution_id: str, document_id: str, version: int) -> str:
    return f"{institution_id}/documents/{document_id}/v{version}"


def _check(upload: Upload, max_bytes: int) -> str:
    try:
        media_type = media_type_for(upload.filename, upload.media_type)
    except DocumentRejected as exc:
        raise Problem(415, exc.code, exc.detail) from None
    if not upload.content:
        raise Problem(422, "no-text", "The document is empty.")
    if len(upload.content) > max_bytes:
        raise Problem(413, "payload-too-large", f"Documents are limited to {max_bytes} bytes.")
    return media_type


async def _announce(bus: EventBus, catalogue: Catalogue, type_: str, document_id: str, data: dict) -> None:
    catalogue.validate(type_, data)
    await bus.publish(make_event(type_, SOURCE, document_id, data))


async def upload(db: Database, objects: ObjectStore, bus: EventBus, catalogue: Catalogue, institution_id: str,
                 user_id: str, doc: Upload, *, max_bytes: int, document_id: str | None = None) -> Document:
    """Store a new document (or, with ``document_id``, a new version of one) and ask for its
    ingestion. The previous version keeps answering until the new one is ingested."""
    media_type = _check(doc, max_bytes)
    now = utcnow()
    values = {"title": doc.title, "filename": doc.filename, "media_type": media_type, "size_bytes": len(doc.content),
              "sha256": hashlib.sha256(doc.content).hexdigest(), "status": "processing", "error_code": None,
              "uploaded_by": user_id, "updated_at": now}
    async with db.transaction() as conn:
        if document_id is None:
            document_id, version = new_id(), 1
            await conn.execute(knowledge_documents.insert().values(
                id=document_id, institution_id=institution_id, latest_version=1, current_version=None, chunks=0,
                created_at=now, **values))
        else:
            found = await _live(conn, institution_id, document_id, lock=True)
            version = found.latest_version + 1
            await conn.execute(knowledge_documents.update().values(latest_version=version, **values)
                               .where(knowledge_documents.c.id == document_id))
    key = object_key(institution_id, document_id, version)
    await objects.put(vector_index.BUCKET, key, doc.content, media_type,
                      metadata={"document-id": document_id, "version": str(version)})
    await _announce(bus, catalogue, UPLOADED, document_id, {
        "institution_id": institution_id, "document_id": document_id, "version": version, "object_key": key,
        "media_type": media_type})
    return await read(db, institution_id, document_id)


async def _live(conn: AsyncConnection, institution_id: str, document_id: str, lock: bool = False) -> Document:
    query = sa.select(*_COLUMNS).where(knowledge_documents.c.id == document_id,
                                       knowledge_documents.c.institution_id == institution_id,
                                       knowledge_documents.c.deleted_at.is_(None))
    if lock and conn.dialect.name == "mysql":
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    if row is None:
        raise not_found("document")
    return _document(row)


async def read(db: Database, institution_id: str, document_id: str) -> Document:
    async with db.connect() as conn:
        return await _live(conn, institution_id, document_id)


async def list_documents(db: Database, institution_id: str, *, limit: int, cursor: str | None) -> DocumentPage:
    """Live documents, newest first, keyset pages."""
    t = knowledge_documents
    query = sa.select(*_COLUMNS).where(t.c.institution_id == institution_id, t.c.deleted_at.is_(None))
    after = decode_time_cursor(cursor)
    if after:
        created_at, last_id = after
        query = query.where(sa.tuple_(t.c.created_at, t.c.id) < sa.tuple_(created_at, last_id))
    query = query.order_by(t.c.created_at.desc(), t.c.id.desc()).limit(limit + 1)
    async with db.connect() as conn:
        rows = [_document(r) for r in (await conn.execute(query)).all()]
    more = len(rows) > limit
    items = tuple(rows[:limit])
    return DocumentPage(items, encode_time_cursor(items[-1].created_at, items[-1].id) if more and items else None)


async def delete(db: Database, bus: EventBus, catalogue: Catalogue, institution_id: str, document_id: str) -> Document:
    """Hidden at once; its chunks leave the index and SQL when the event is handled."""
    async with db.transaction() as conn:
        found = await _live(conn, institution_id, document_id, lock=True)
        await conn.execute(knowledge_documents.update().values(status="deleted", deleted_at=utcnow(), updated_at=utcnow(),
                                                               current_version=None)
                           .where(knowledge_documents.c.id == document_id))
    await _announce(bus, catalogue, DELETED, document_id, {"institution_id": institution_id, "document_id": document_id})
    return found


# --- ingestion (the knowledge_ingest event function) --------------------------------------

async def _state(db: Database, document_id: str):
    async with db.connect() as conn:
        return (await conn.execute(sa.select(knowledge_documents.c.latest_version, knowledge_documents.c.current_version,
                                             knowledge_documents.c.deleted_at, knowledge_documents.c.title,
                                             knowledge_documents.c.institution_id)
                                   .where(knowledge_documents.c.id == document_id))).first()


async def _fail(db: Database, document_id: str, version: int, code: str) -> None:
    async with db.transaction() as conn:
        await conn.execute(knowledge_documents.update().values(status="failed", error_code=code, updated_at=utcnow())
                           .where(knowledge_documents.c.id == document_id,
                                  knowledge_documents.c.latest_version == version,
                                  knowledge_documents.c.deleted_at.is_(None)))


async def ingest(db: Database, objects: ObjectStore, institution_id: str, document_id: str, version: int,
                 key: str, media_type: str) -> str:
    """Extract, chunk, embed, index ``version`` and make it current. Idempotent: a version
    already current, superseded or of a deleted document is skipped. Returns the outcome:
    ready, failed:<code>, or skipped."""
    state = await _state(db, document_id)
    if state is None or state.institution_id != institution_id or state.deleted_at is not None \
            or state.latest_version != version or state.current_version == version:
        return "skipped"
    try:
        data = await objects.get(vector_index.BUCKET, key)
        sections = await asyncio.to_thread(sections_of, data, media_type, state.title)
        chunks = chunk(sections)
    except ObjectNotFound:
        await _fail(db, document_id, version, "missing-object")
        return "failed:missing-object"
    except DocumentRejected as exc:
        await _fail(db, document_id, version, exc.code)
        return f"failed:{exc.code}"
    vectors = await asyncio.to_thread(shared_encoder().encode, [f"{c.section}\n{c.text}" for c in chunks])
    chunk_ids = [new_id() for _ in chunks]
    rows = [{"id": cid, "institution_id": institution_id, "document_id": document_id, "version": version,
             "position": c.position, "section": c.section, "text": c.text} for cid, c in zip(chunk_ids, chunks)]
    async with db.transaction() as conn:  # a crashed earlier try may have left this version's rows
        await conn.execute(knowledge_chunks.delete().where(knowledge_chunks.c.document_id == document_id,
                                                           knowledge_chunks.c.version == version))
    for start in range(0, len(rows), _INSERT_BATCH):
        async with db.transaction() as conn:
            await conn.execute(knowledge_chunks.insert(), rows[start:start + _INSERT_BATCH])

    async def switch(conn: AsyncConnection) -> bool:
        done = await conn.execute(knowledge_documents.update().values(
            current_version=version, status="ready", chunks=len(rows), error_code=None, updated_at=utcnow())
            .where(knowledge_documents.c.id == document_id, knowledge_documents.c.latest_version == version,
                   knowledge_documents.c.deleted_at.is_(None)))
        return done.rowcount == 1

    published = await vector_index.publish(db, objects, institution_id, document_id, chunk_ids, vectors, switch)
    async with db.transaction() as conn:   # the superseded versions' rows (or this one's, if abandoned)
        stale = knowledge_chunks.c.version != version if published else knowledge_chunks.c.version == version
        await conn.execute(knowledge_chunks.delete().where(knowledge_chunks.c.document_id == document_id, stale))
    if published:
        log.info("knowledge document ingested", extra={"document_id": document_id, "version": version,
                                                        "chunks": len(rows)})
    return "ready" if published else "skipped"


async def remove(db: Database, objects: ObjectStore, institution_id: str, document_id: str) -> str:
    """A deleted document's rows out of the index and SQL, its files out of the store (idempotent)."""
    state = await _state(db, document_id)
    if state is None or state.institution_id != institution_id or state.deleted_at is None:
        return "skipped"

    async def keep_deleted(conn: AsyncConnection) -> bool:
        return True

    await vector_index.publish(db, objects, institution_id, document_id, [], None, keep_deleted)
    async with db.transaction() as conn:
        await conn.execute(knowledge_chunks.delete().where(knowledge_chunks.c.document_id == document_id))
    for info in await objects.list(vector_index.BUCKET, f"{institution_id}/documents/{document_id}/"):
        await objects.delete(vector_index.BUCKET, info.key)
    return "removed"
