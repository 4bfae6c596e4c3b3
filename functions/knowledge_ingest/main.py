"""knowledge_ingest: ingests uploaded knowledge-base documents, removes deleted ones (CloudEvent).

``document.uploaded``: extract, clean, chunk, embed (all-MiniLM-L6-v2), write the chunks
under the new version, publish a new index generation and switch the document to the new
version in one transaction. A document that can never be ingested (unsupported, corrupt,
no text) is marked ``failed`` and the event is done (2xx); SQL or store failures are
retried. ``document.deleted``: its rows leave the index and SQL, its files the store.
Idempotent: a version already current, superseded or deleted is skipped. Use case:
``medflow.knowledge.documents``.
"""

from __future__ import annotations

import logging

from medflow.knowledge import documents as use_cases
from medflow.runtime.entry import entrypoint
from medflow.runtime.spec import EventCall, EventFunction

spec = EventFunction("knowledge_ingest", "Knowledge-base ingestion", accepts=("org.medflow.knowledge.document.*",))
log = logging.getLogger("medflow.knowledge")


@spec.on_event
async def on_document_event(call: EventCall) -> None:
    data = call.event.data
    s = call.services
    if call.event["type"] == use_cases.UPLOADED:
        outcome = await use_cases.ingest(s.db, s.objects, data["institution_id"], data["document_id"], data["version"],
                                         data["object_key"], data["media_type"])
    else:
        outcome = await use_cases.remove(s.db, s.objects, data["institution_id"], data["document_id"])
    log.info("knowledge document event", extra={"document_id": data["document_id"], "outcome": outcome,
                                                 "trace_id": call.trace.trace_id})


knowledge_ingest = entrypoint(spec)
