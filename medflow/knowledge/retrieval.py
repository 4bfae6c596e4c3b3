"""Retrieval as LangChain components: ``KnowledgeRetriever`` (a ``BaseRetriever``: encode
the question, recall candidates from FAISS, keep the visible chunks) and ``LexicalReranker``
(a ``BaseDocumentCompressor``: re-rank the candidates and keep the top k).

Recall takes ``CANDIDATES_PER_RESULT`` × k nearest chunks by cosine; the re-ranker adds to
each candidate's cosine a bonus for the question's content words (stemmed) found in its
section and text (exact drug names, doses and acronyms that a small sentence encoder blurs), drops
those under ``MIN_SCORE``, and keeps k. Visibility is decided in SQL, not by the index: a
chunk counts only when it belongs to the current version of a live document of the
caller's institution.
"""

from __future__ import annotations

import asyncio
import functools
import re
import time
from typing import Any, Sequence

import snowballstemmer
import sqlalchemy as sa
from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from medflow.db.schema import knowledge_chunks, knowledge_documents
from medflow.knowledge.encoder import MiniLMEncoder
from medflow.knowledge.index import VectorIndex

CANDIDATES_PER_RESULT = 4
MIN_SCORE = 0.15
LEXICAL_WEIGHT = 0.15
_WORD = re.compile(r"[\w\-]{3,}", re.UNICODE)
_STOP = frozenset("""the and for with what when which who whom how are was were is be been being this that these those
from into onto about above below than then there their they them its it's our your you can could should would may might
must does did doing have has had not nor any all each few more most other some such only own same very just over under
again further once here why where after before while during between both but out off too use used using per via
patient patients""".split())


_STEMMER = snowballstemmer.stemmer("english")


@functools.lru_cache(maxsize=65_536)
def _stem(word: str) -> str:
    """A word's Snowball stem; cached, as the stemmer is pure Python and words repeat."""
    return _STEMMER.stemWord(word)


def terms(text: str) -> set[str]:
    """The content words of ``text``, stemmed (Snowball, English): "diagnoses" in a question
    meets "diagnose" in a guideline."""
    return {_stem(w) for w in (m.lower() for m in _WORD.findall(text)) if w not in _STOP}


def recall(encoder: MiniLMEncoder, index: VectorIndex, question: str, k: int,
           timings: dict[str, float] | None = None) -> list[tuple[str, float]]:
    """(chunk id, cosine) of the ``CANDIDATES_PER_RESULT × k`` nearest chunks."""
    started = time.perf_counter()
    vector = encoder.encode_one(question)
    encoded = time.perf_counter()
    found = index.search(vector, k * CANDIDATES_PER_RESULT)
    if timings is not None:
        timings["encode_s"] = encoded - started
        timings["recall_s"] = time.perf_counter() - encoded
    return found


class LexicalReranker(BaseDocumentCompressor):
    """Cosine plus a bonus for the question's content words; keeps ``top_n`` above ``min_score``."""

    top_n: int = 5
    min_score: float = MIN_SCORE
    lexical_weight: float = LEXICAL_WEIGHT

    def compress_documents(self, documents: Sequence[Document], query: str, callbacks: Any = None) -> Sequence[Document]:
        wanted = terms(query)
        scored = []
        for doc in documents:
            dense = float(doc.metadata.get("score", 0.0))
            overlap = len(wanted & terms(f"{doc.metadata.get('section', '')} {doc.page_content}")) / len(wanted) if wanted else 0.0
            score = dense + self.lexical_weight * overlap
            if dense >= self.min_score:
                scored.append((score, doc))
        scored.sort(key=lambda pair: -pair[0])
        out = []
        for score, doc in scored[:self.top_n]:
            out.append(Document(page_content=doc.page_content, metadata={**doc.metadata, "score": round(score, 4)}))
        return out


class KnowledgeRetriever(BaseRetriever):
    """The visible chunks nearest to a question in one institution's knowledge base,
    re-ranked; fills ``timings`` (encode_s, recall_rerank_s) as it goes."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    db: Any
    index: VectorIndex
    encoder: MiniLMEncoder
    institution_id: str
    reranker: LexicalReranker
    timings: dict[str, float]

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        raise NotImplementedError("KnowledgeRetriever is asynchronous: use ainvoke")

    async def _aget_relevant_documents(self, query: str, *,
                                       run_manager: AsyncCallbackManagerForRetrieverRun) -> list[Document]:
        stage: dict[str, float] = {}
        found = await asyncio.to_thread(recall, self.encoder, self.index, query, self.reranker.top_n, stage)
        started = time.perf_counter()
        documents = await self._visible(found)
        ranked = list(self.reranker.compress_documents(documents, query))
        self.timings["encode_s"] = stage["encode_s"]
        self.timings["recall_rerank_s"] = stage["recall_s"] + time.perf_counter() - started
        return ranked

    async def _visible(self, found: list[tuple[str, float]]) -> list[Document]:
        if not found:
            return []
        c, d = knowledge_chunks, knowledge_documents
        query = (sa.select(c.c.id, c.c.document_id, c.c.version, c.c.position, c.c.section, c.c.text, d.c.title)
                 .join(d, d.c.id == c.c.document_id)
                 .where(c.c.id.in_([chunk_id for chunk_id, _ in found]), d.c.institution_id == self.institution_id,
                        d.c.deleted_at.is_(None), c.c.version == d.c.current_version))
        async with self.db.connect() as conn:
            rows = {r.id: r for r in (await conn.execute(query)).all()}
        return [Document(page_content=rows[cid].text, metadata={
                    "chunk_id": cid, "document_id": rows[cid].document_id, "title": rows[cid].title,
                    "section": rows[cid].section, "position": rows[cid].position, "version": rows[cid].version,
                    "score": score})
                for cid, score in found if cid in rows]
