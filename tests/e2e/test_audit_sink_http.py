"""The audit sink over HTTP, as Knative or the relay deliver to it: Knative's status
contract, problem+json for malformed CloudEvents, one row per event id."""

from __future__ import annotations

import json

import httpx
import pytest
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.routing import Route

from medflow.audit.trail import AUDIT_RECORDED
from medflow.bus.events import make_event, to_http
from medflow.db.schema import audit_log
from medflow.runtime.events import EventRuntime
from medflow.runtime.registry import load_specs
from medflow.runtime.services import ServiceHolder

DATA = {"occurred_at": "2026-11-21T10:00:00+00:00", "action": "record.read", "resource_type": "case",
        "resource_id": "01J0000000000000000000CASE", "outcome": "success", "actor_id": "01J00000000000000000000DOC",
        "actor_role": "doctor", "institution_id": "01J00000000000000000000INS", "details": {"fields": 3}}


def _sink_spec():
    return next(s for s in load_specs() if s.name == "audit_sink")


@pytest.fixture
async def sink(embedded_services):
    runtime = EventRuntime(_sink_spec(), ServiceHolder(services=embedded_services))

    async def endpoint(request):
        return await runtime.handle(request, "/" + request.path_params["path"])

    app = Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST"])])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sink") as client:
        client.services = embedded_services
        yield client


async def _rows(services) -> list:
    async with services.db.connect() as conn:
        return (await conn.execute(sa.select(audit_log))).mappings().all()


def _event(data=DATA, type_=AUDIT_RECORDED, event_id=None):
    return make_event(type_, "/medflow/test", data.get("resource_id") or "x", data, event_id=event_id,
                      traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")


async def test_a_binary_cloudevent_makes_one_row_even_when_delivered_twice(sink):
    headers, body = to_http(_event(event_id="evt-1"))
    first = await sink.post("/", content=body, headers=headers)
    again = await sink.post("/", content=body, headers=headers)
    assert first.status_code == 204 and again.status_code == 204
    rows = await _rows(sink.services)
    assert len(rows) == 1
    row = rows[0]
    assert (row["event_id"], row["action"], row["resource_id"], row["actor_role"]) == ("evt-1", "record.read", DATA["resource_id"], "doctor")
    assert row["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736" and row["details"] == {"fields": 3}


async def test_a_structured_cloudevent_is_accepted(sink):
    event = {"specversion": "1.0", "id": "evt-s", "type": AUDIT_RECORDED, "source": "/medflow/test", "subject": "s",
             "datacontenttype": "application/json", "data": DATA}
    response = await sink.post("/", content=json.dumps(event), headers={"content-type": "application/cloudevents+json"})
    assert response.status_code == 204
    assert [r["event_id"] for r in await _rows(sink.services)] == ["evt-s"]


def _binary_headers(**overrides):
    headers = {"ce-specversion": "1.0", "ce-id": "bad-1", "ce-type": AUDIT_RECORDED, "ce-source": "/medflow/test",
               "content-type": "application/json"}
    headers.update(overrides)
    return {k: v for k, v in headers.items() if v is not None}


@pytest.mark.parametrize("headers,body,status,code", [
    (_binary_headers(**{"ce-id": None}), json.dumps(DATA), 400, "malformed-cloudevent"),
    (_binary_headers(**{"ce-source": None, "ce-type": None}), json.dumps(DATA), 400, "malformed-cloudevent"),
    (_binary_headers(**{"ce-specversion": "0.1"}), json.dumps(DATA), 400, "malformed-cloudevent"),
    ({"content-type": "application/json"}, json.dumps(DATA), 400, "not-a-cloudevent"),
    (_binary_headers(**{"content-type": "text/plain"}), "hello", 415, "unsupported-media-type"),
    (_binary_headers(), "{not json", 400, "malformed-json"),
    ({"content-type": "application/cloudevents+json"}, "{not json", 400, "malformed-cloudevent"),
    (_binary_headers(**{"ce-type": "org.medflow.records.case.updated.v1"}), json.dumps(DATA), 400, "event-rejected"),
    (_binary_headers(), json.dumps({**DATA, "outcome": "maybe"}), 400, "event-rejected"),
    (_binary_headers(), json.dumps({**DATA, "patient_name": "张伟"}), 400, "event-rejected"),
])
async def test_malformed_or_unacceptable_events_are_refused_for_good_and_write_nothing(sink, headers, body, status, code):
    response = await sink.post("/", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code
    assert "张伟" not in response.text
    assert await _rows(sink.services) == []


async def test_an_oversized_event_is_a_413(sink):
    limit = sink.services.settings.max_body_bytes
    data = {**DATA, "details": {"pad": "x" * limit}}
    response = await sink.post("/", content=json.dumps(data), headers=_binary_headers())
    assert response.status_code == 413 and await _rows(sink.services) == []


async def test_a_database_failure_is_answered_with_a_retryable_status(sink, tmp_path):
    from medflow.db.engine import Database
    await sink.services.db.close()
    sink.services.db = Database(f"sqlite:///{tmp_path / 'not-migrated.sqlite3'}")  # every write fails
    headers, body = to_http(_event(event_id="evt-retry"))
    response = await sink.post("/", content=body, headers=headers)
    assert response.status_code in (500, 503)  # retried by Knative / the relay, never dead-lettered at once


async def test_only_post_on_the_root_delivers(sink):
    assert (await sink.get("/")).status_code == 405
    assert (await sink.post("/elsewhere", content=b"{}", headers=_binary_headers())).status_code == 404
    assert (await sink.get("/healthz")).json()["status"] == "ok"
