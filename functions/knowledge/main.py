"""knowledge: the institution's knowledge base and its assistant (HTTP).

Administrators upload (JSON with the file base64-encoded: Markdown, plain text, PDF,
HTML), replace, list and delete documents; ingestion runs in ``knowledge_ingest``
(202: poll the document until ``ready`` or ``failed``). Doctors and administrators ask
questions: the answer streams as server-sent events (``token``…, ``citations``,
``timings``, ``done``; ``error`` if it fails midway) and is kept in the asker's
conversation, which they can read and rate. Patients have no access: the knowledge base is
clinical guidance for staff. Use cases: ``medflow.knowledge``.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from medflow.audit.trail import audit
from medflow.auth.principal import ADMIN, STAFF
from medflow.errors import FieldError, validation_failed
from medflow.knowledge import assistant, documents as use_cases
from medflow.pagination import MAX_PAGE_SIZE
from medflow.runtime.entry import entrypoint
from medflow.runtime.spec import Call, EventStream, HttpFunction, RequestModel, ResponseModel

spec = HttpFunction("knowledge", "Knowledge base and assistant of an institution")
SOURCE = use_cases.SOURCE
MAX_UPLOAD_BODY = 15 * 1_048_576   # base64 of the largest document setting's default (10 MiB) and the JSON around it

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Filename = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]


class DocumentIn(RequestModel):
    title: Title
    filename: Filename = Field(description="Its extension picks the type when media_type is not given.")
    media_type: Literal["text/markdown", "text/plain", "application/pdf", "text/html"] | None = None
    content_base64: str = Field(min_length=1, description="The file, base64-encoded.")


class DocumentOut(ResponseModel):
    id: str
    title: str
    filename: str
    media_type: str
    size_bytes: int
    status: Literal["processing", "ready", "failed", "deleted"]
    latest_version: int
    current_version: int | None = Field(description="The version answering questions; null until one is ready.")
    chunks: int
    error_code: str | None = Field(description="Why the latest version failed: unsupported-document, "
                                               "corrupt-document, no-text, missing-object.")
    uploaded_by: str
    created_at: datetime
    updated_at: datetime

    @staticmethod
    def of(d: use_cases.Document) -> "DocumentOut":
        return DocumentOut(id=d.id, title=d.title, filename=d.filename, media_type=d.media_type, size_bytes=d.size_bytes,
                           status=d.status, latest_version=d.latest_version, current_version=d.current_version,
                           chunks=d.chunks, error_code=d.error_code, uploaded_by=d.uploaded_by,
                           created_at=d.created_at, updated_at=d.updated_at)


class PageQuery(RequestModel):
    limit: int = Field(20, ge=1, le=MAX_PAGE_SIZE)
    cursor: str | None = Field(None, max_length=512)


class DocumentPage(ResponseModel):
    items: list[DocumentOut]
    next_cursor: str | None


class AskIn(RequestModel):
    # Length is checked by the use case so an empty or over-long question gets its own code.
    question: str = Field(max_length=20_000)
    top_k: int = Field(5, ge=1, le=20, description="Passages to answer from.")
    conversation_id: str | None = Field(None, max_length=26, description="Continue this conversation of yours.")
    keep: bool = Field(True, description="Keep the question and answer in your conversations.")


class ConversationOut(ResponseModel):
    id: str
    title: str
    created_at: datetime
    updated_at: datetime


class ConversationPage(ResponseModel):
    items: list[ConversationOut]
    next_cursor: str | None


class AnswerOut(ResponseModel):
    id: str
    question: str
    answer: str
    mode: Literal["llm", "extractive"]
    citations: list[dict[str, Any]]
    timings: dict[str, Any]
    rating: int | None
    rating_comment: str | None
    created_at: datetime


class ConversationDetail(ConversationOut):
    answers: list[AnswerOut]


class RatingIn(RequestModel):
    rating: int = Field(ge=1, le=5, description="1 (wrong or harmful) to 5 (right and useful).")
    comment: str | None = Field(None, max_length=1000)


def _content(body: DocumentIn) -> bytes:
    try:
        return base64.b64decode(body.content_base64, validate=True)
    except (binascii.Error, ValueError):
        raise validation_failed([FieldError("body.content_base64", "Not valid base64", "base64")]) from None


async def _audit(call: Call, action: str, document: use_cases.Document) -> None:
    me = call.caller()
    await audit(call.services, source=SOURCE, action=action,
                resource_type="knowledge_document", outcome="success", actor_id=me.user_id, actor_role=me.role,
                institution_id=me.institution_id, resource_id=document.id,
                details={"version": document.latest_version})


def _upload(body: DocumentIn) -> use_cases.Upload:
    return use_cases.Upload(title=body.title, filename=body.filename, content=_content(body), media_type=body.media_type)


@spec.operation("POST", "/knowledge/documents", access=ADMIN, body=DocumentIn, response=DocumentOut, status=202,
                max_body_bytes=MAX_UPLOAD_BODY, errors=(413, 415), summary="Upload a document")
async def upload_document(call: Call) -> DocumentOut:
    """Stored, then ingested in the background: poll it until `ready` (or `failed`)."""
    s = call.services
    me = call.caller()
    found = await use_cases.upload(s.db, s.objects, s.bus, s.catalogue, me.institution_id, me.user_id,
                                   _upload(call.body), max_bytes=s.settings.knowledge_max_document_bytes)
    await _audit(call, "knowledge.document.uploaded", found)
    return DocumentOut.of(found)


@spec.operation("PUT", "/knowledge/documents/{document_id}", access=ADMIN, body=DocumentIn, response=DocumentOut,
                status=202, max_body_bytes=MAX_UPLOAD_BODY, errors=(413, 415), summary="Replace a document")
async def replace_document(call: Call) -> DocumentOut:
    """A new version; the current one keeps answering until the new one is ready."""
    s = call.services
    me = call.caller()
    found = await use_cases.upload(s.db, s.objects, s.bus, s.catalogue, me.institution_id, me.user_id,
                                   _upload(call.body), max_bytes=s.settings.knowledge_max_document_bytes,
                                   document_id=call.path["document_id"])
    await _audit(call, "knowledge.document.replaced", found)
    return DocumentOut.of(found)


@spec.operation("GET", "/knowledge/documents", access=STAFF, query=PageQuery, response=DocumentPage,
                summary="List documents")
async def list_documents(call: Call) -> DocumentPage:
    """The knowledge base of your institution, newest first."""
    q: PageQuery = call.query
    page = await use_cases.list_documents(call.services.db, call.caller().institution_id, limit=q.limit, cursor=q.cursor)
    return DocumentPage(items=[DocumentOut.of(d) for d in page.items], next_cursor=page.next_cursor)


@spec.operation("GET", "/knowledge/documents/{document_id}", access=STAFF, response=DocumentOut,
                summary="Read a document's status")
async def read_document(call: Call) -> DocumentOut:
    return DocumentOut.of(await use_cases.read(call.services.db, call.caller().institution_id, call.path["document_id"]))


@spec.operation("DELETE", "/knowledge/documents/{document_id}", access=ADMIN, response=None, status=204,
                summary="Delete a document")
async def delete_document(call: Call) -> None:
    """No answer cites it from now on; its chunks leave the index shortly after."""
    s = call.services
    found = await use_cases.delete(s.db, s.bus, s.catalogue, call.caller().institution_id, call.path["document_id"])
    await _audit(call, "knowledge.document.deleted", found)


@spec.operation("POST", "/knowledge/ask", access=STAFF, body=AskIn, response=None, produces="text/event-stream",
                errors=(503,), summary="Ask the knowledge assistant (server-sent events)")
async def ask(call: Call) -> EventStream:
    """Events: `token` ({text}) while the answer streams, then `citations` ({citations: [{n, document_id, title,
    section, snippet, ...}]}), `timings` (encode_ms, recall_rerank_ms, first_token_ms, decode_tokens_per_s,
    total_ms, mode), `done` ({answer_id, conversation_id}); `error` (a problem) if it fails midway. Without a
    configured LLM the answer is extractive and says so."""
    body: AskIn = call.body
    s = call.services
    answer = await assistant.prepare(s.db, s.objects, s.settings, call.caller(), assistant.Question(
        text=body.question, top_k=body.top_k, conversation_id=body.conversation_id, keep=body.keep))
    return EventStream(answer.events())


@spec.operation("GET", "/knowledge/conversations", access=STAFF, query=PageQuery, response=ConversationPage,
                summary="List your conversations")
async def list_conversations(call: Call) -> ConversationPage:
    q: PageQuery = call.query
    items, cursor = await assistant.list_conversations(call.services.db, call.caller(), limit=q.limit, cursor=q.cursor)
    return ConversationPage(items=[ConversationOut(**i) for i in items], next_cursor=cursor)


@spec.operation("GET", "/knowledge/conversations/{conversation_id}", access=STAFF, response=ConversationDetail,
                summary="Read one of your conversations")
async def read_conversation(call: Call) -> ConversationDetail:
    conv, answers = await assistant.read_conversation(call.services.db, call.caller(), call.path["conversation_id"])
    return ConversationDetail(**conv, answers=[AnswerOut(**a) for a in answers])


@spec.operation("PUT", "/knowledge/answers/{answer_id}/rating", access=STAFF, body=RatingIn, response=None,
                status=204, summary="Rate an answer you were given")
async def rate_answer(call: Call) -> None:
    body: RatingIn = call.body
    await assistant.rate(call.services.db, call.caller(), call.path["answer_id"], body.rating, body.comment)


knowledge = entrypoint(spec)
