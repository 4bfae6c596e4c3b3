"""The vector index of an institution's knowledge base: FAISS inner product over unit
vectors (= cosine), with the chunk and document id of every row.

Persisted to the object store (bucket ``knowledge``) as one ``.npz`` artefact per index
generation; ``knowledge_indexes`` names the current generation. A function keeps the
loaded index per institution and reloads it when the generation changes (one small SQL
read per question). Writers publish a new generation with an optimistic check, so two
ingestions at once never lose each other's rows (the loser rebuilds on the new base).
"""

from __future__ import annotations

import asyncio
import io
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

import numpy as np
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from medflow.db.engine import Database, is_unique_violation
from medflow.db.schema import knowledge_indexes
from medflow.errors import TransientError
from medflow.ids import new_id, utcnow
from medflow.knowledge.encoder import DIMENSION
from medflow.storage.ports import ObjectNotFound, ObjectStore

BUCKET = "knowledge"
_ID = "<U26"


class VectorIndex:
    """Rows of (vector, chunk id, document id); search answers (chunk id, cosine) best first.

    FAISS holds the vectors quantised to 8 bits per dimension (``IndexScalarQuantizer``,
    inner product): a quarter of the memory traffic of a flat index, so recall over 100,000
    chunks takes about 4 ms instead of 11 on one core here. The candidates it returns are
    re-scored exactly from the float32 vectors, which the artefact keeps (and rebuilds need).
    """

    def __init__(self, vectors: np.ndarray, chunk_ids: np.ndarray, document_ids: np.ndarray) -> None:
        import faiss

        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, DIMENSION)
        self.chunk_ids = np.asarray(chunk_ids, dtype=_ID)
        self.document_ids = np.asarray(document_ids, dtype=_ID)
        self.faiss = faiss.IndexScalarQuantizer(DIMENSION, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
        if len(self.vectors):
            self.faiss.train(self.vectors)
            self.faiss.add(self.vectors)

    @staticmethod
    def empty() -> "VectorIndex":
        return VectorIndex(np.zeros((0, DIMENSION), np.float32), np.zeros(0, _ID), np.zeros(0, _ID))

    def __len__(self) -> int:
        return len(self.chunk_ids)

    def search(self, query: np.ndarray, k: int) -> list[tuple[str, float]]:
        if not len(self) or k <= 0:
            return []
        query = np.asarray(query, np.float32).reshape(DIMENSION)
        _, rows = self.faiss.search(query.reshape(1, DIMENSION), min(k, len(self)))
        rows = rows[0][rows[0] >= 0]
        exact = self.vectors[rows] @ query
        order = np.argsort(-exact, kind="stable")
        return [(str(self.chunk_ids[rows[i]]), float(exact[i])) for i in order]

    def replacing(self, document_id: str, chunk_ids: list[str], vectors: np.ndarray | None) -> "VectorIndex":
        """A new index: this one without ``document_id``'s rows, plus the given ones."""
        keep = self.document_ids != document_id
        new_vectors = vectors if vectors is not None else np.zeros((0, DIMENSION), np.float32)
        return VectorIndex(np.concatenate([self.vectors[keep], new_vectors]),
                           np.concatenate([self.chunk_ids[keep], np.asarray(chunk_ids, dtype=_ID)]),
                           np.concatenate([self.document_ids[keep], np.full(len(chunk_ids), document_id, dtype=_ID)]))

    def to_bytes(self) -> bytes:
        out = io.BytesIO()
        np.savez(out, vectors=self.vectors, chunk_ids=self.chunk_ids, document_ids=self.document_ids)
        return out.getvalue()

    @staticmethod
    def from_bytes(data: bytes) -> "VectorIndex":
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return VectorIndex(npz["vectors"], npz["chunk_ids"], npz["document_ids"])


@dataclass(frozen=True)
class Generation:
    number: int
    object_key: str
    chunks: int


async def current_generation(conn: AsyncConnection, institution_id: str) -> Generation | None:
    row = (await conn.execute(sa.select(knowledge_indexes.c.generation, knowledge_indexes.c.object_key,
                                        knowledge_indexes.c.chunks)
                              .where(knowledge_indexes.c.institution_id == institution_id))).first()
    return Generation(*row) if row else None


async def load(objects: ObjectStore, generation: Generation | None) -> VectorIndex:
    if generation is None:
        return VectorIndex.empty()
    data = await objects.get(BUCKET, generation.object_key)
    return await asyncio.to_thread(VectorIndex.from_bytes, data)


class StaleGeneration(Exception):
    """Another writer published a generation first: rebuild on the new one."""


async def publish(db: Database, objects: ObjectStore, institution_id: str, document_id: str,
                  chunk_ids: list[str], vectors: np.ndarray | None,
                  switch: Callable[[AsyncConnection], Awaitable[bool]], attempts: int = 8) -> bool:
    """Write a new index generation with ``document_id``'s rows replaced by the given ones,
    and, in the transaction that makes it current, run ``switch`` (which makes the document's
    new version visible). ``switch`` returning False abandons the change (superseded
    meanwhile). Returns whether the generation was published."""
    for _ in range(attempts):
        async with db.connect() as conn:
            base_gen = await current_generation(conn, institution_id)
        try:
            base = await load(objects, base_gen)
        except ObjectNotFound:   # replaced meanwhile by a newer generation
            continue
        index = await asyncio.to_thread(base.replacing, document_id, chunk_ids, vectors)
        number = (base_gen.number if base_gen else 0) + 1
        key = f"{institution_id}/index/{number:08d}-{new_id()}.npz"
        await objects.put(BUCKET, key, await asyncio.to_thread(index.to_bytes), "application/octet-stream")
        try:
            async with db.transaction() as conn:
                values = {"generation": number, "object_key": key, "chunks": len(index), "updated_at": utcnow()}
                if base_gen is None:
                    await conn.execute(knowledge_indexes.insert().values(institution_id=institution_id, **values))
                else:
                    done = await conn.execute(knowledge_indexes.update().values(**values).where(
                        knowledge_indexes.c.institution_id == institution_id,
                        knowledge_indexes.c.generation == base_gen.number))
                    if done.rowcount != 1:
                        raise StaleGeneration()
                if not await switch(conn):
                    raise _Abandoned()
        except (StaleGeneration, sa.exc.IntegrityError) as exc:
            if isinstance(exc, sa.exc.IntegrityError) and not is_unique_violation(exc):
                raise
            await objects.delete(BUCKET, key)
            continue
        except _Abandoned:
            await objects.delete(BUCKET, key)
            return False
        if base_gen is not None:
            await objects.delete(BUCKET, base_gen.object_key)
        return True
    raise TransientError("the knowledge index changed too often meanwhile")


class _Abandoned(Exception):
    pass


class IndexCache:
    """The loaded index of each institution in this process, reloaded when its generation moves."""

    def __init__(self) -> None:
        self._loaded: dict[str, tuple[int, VectorIndex]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.last_load_seconds: float | None = None

    async def get(self, db: Database, objects: ObjectStore, institution_id: str) -> VectorIndex:
        for _ in range(3):
            async with db.connect() as conn:
                generation = await current_generation(conn, institution_id)
            number = generation.number if generation else 0
            held = self._loaded.get(institution_id)
            if held and held[0] == number:
                return held[1]
            lock = self._locks.setdefault(institution_id, asyncio.Lock())
            async with lock:
                held = self._loaded.get(institution_id)
                if held and held[0] == number:
                    return held[1]
                started = time.perf_counter()
                try:
                    index = await load(objects, generation)
                except ObjectNotFound:  # a newer generation replaced it while we read: read again
                    continue
                self.last_load_seconds = time.perf_counter() - started
                self._loaded[institution_id] = (number, index)
                return index
        raise TransientError("the knowledge index is being replaced; try again")
