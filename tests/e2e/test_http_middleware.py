"""The shared HTTP middleware, exercised through a function declared here with a real write:
bad input gets the right problem+json status and changes nothing."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
import sqlalchemy as sa
from pydantic import Field
from starlette.applications import Starlette
from starlette.routing import Route

from medflow.audit.trail import AuditEntry, record
from medflow.auth.principal import PUBLIC, Access, Principal
from medflow.db.schema import audit_log
from medflow.ids import new_id, utcnow
from medflow.runtime.http import HttpRuntime
from medflow.runtime.services import ServiceHolder
from medflow.runtime.spec import Call, HttpFunction, RequestModel, ResponseModel

PATIENT_NAME = "张伟-sensitive"


class NoteIn(RequestModel):
    resource_id: str = Field(min_length=1, max_length=64)
    count: int = Field(ge=0)


class NoteOut(ResponseModel):
    event_id: str


class Echo(ResponseModel):
    ok: bool


probe = HttpFunction("probe", "Middleware probe")


@probe.operation("POST", "/notes", access=PUBLIC, body=NoteIn, response=NoteOut, status=201, summary="Write a row")
async def write_note(call: Call) -> NoteOut:
    event_id = new_id()
    await record(call.services.db, AuditEntry("probe.write", "note", "success", utcnow(), call.body.resource_id),
                 event_id=event_id, source="/medflow/probe", trace_id=call.trace.trace_id)
    return NoteOut(event_id=event_id)


@probe.operation("GET", "/admins-only", access=Access.roles_("admin"), response=Echo, summary="Admins only")
async def admins_only(call: Call) -> Echo:
    return Echo(ok=True)


@probe.operation("GET", "/broken", access=PUBLIC, response=Echo, summary="Fails inside")
async def broken(call: Call) -> Echo:
    raise ValueError(f"cannot process {PATIENT_NAME}")


@probe.operation("GET", "/dependency-down", access=PUBLIC, response=Echo, summary="A dependency is down")
async def dependency_down(call: Call) -> Echo:
    from medflow.errors import TransientError
    raise TransientError("redis unreachable")


@probe.operation("GET", "/bad-response", access=PUBLIC, response=Echo, summary="Answers outside its schema")
async def bad_response(call: Call) -> dict:
    return {"ok": True, "patient_name": PATIENT_NAME}


class HeaderAuthenticator:
    """Test authenticator: the role comes from a header (the accounts issue brings JWTs)."""

    async def __call__(self, headers):
        role = headers.get("x-test-role")
        return Principal("u1", role, "i1") if role else None


@pytest.fixture
async def client(embedded_services):
    embedded_services.authenticator = HeaderAuthenticator()
    runtime = HttpRuntime(probe, ServiceHolder(services=embedded_services))

    async def endpoint(request):
        return await runtime.handle(request, "/" + request.path_params["path"])

    app = Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST", "PUT", "DELETE"])])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://probe") as c:
        c.services = embedded_services
        yield c


async def _rows(services) -> int:
    async with services.db.connect() as conn:
        return (await conn.execute(sa.select(sa.func.count()).select_from(audit_log))).scalar_one()


def _logged(caplog) -> str:
    """Everything the log records hold, extras included, as the JSON formatter would write it."""
    return " ".join(json.dumps(r.__dict__, default=str, ensure_ascii=False) for r in caplog.records)


def _problem(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["code"] == code and body["type"].endswith("/" + code)
    assert body["detail"]
    return body


async def test_a_valid_request_writes_one_row(client):
    response = await client.post("/notes", json={"resource_id": "r1", "count": 1})
    assert response.status_code == 201 and response.json()["event_id"]
    assert await _rows(client.services) == 1


@pytest.mark.parametrize("content,status,code", [
    (b'{"resource_id": "r1", "count":', 400, "malformed-json"),
    (b"\xff\xfe not utf-8", 400, "malformed-json"),
])
async def test_malformed_json_is_a_400_and_writes_nothing(client, content, status, code):
    _problem(await client.post("/notes", content=content, headers={"content-type": "application/json"}), status, code)
    assert await _rows(client.services) == 0


async def test_wrong_types_and_unknown_fields_are_422_with_field_errors_and_no_values(client):
    body = _problem(await client.post("/notes", json={"resource_id": PATIENT_NAME, "count": "many", "extra": 1}),
                    422, "validation-failed")
    locs = {e["loc"] for e in body["errors"]}
    assert locs == {"body.count", "body.extra"}
    assert PATIENT_NAME not in json.dumps(body)
    assert await _rows(client.services) == 0


async def test_missing_fields_and_a_non_object_body_are_422(client):
    body = _problem(await client.post("/notes", json={}), 422, "validation-failed")
    assert {e["loc"] for e in body["errors"]} == {"body.resource_id", "body.count"}
    _problem(await client.post("/notes", json=[1, 2]), 422, "validation-failed")
    assert await _rows(client.services) == 0


async def test_a_body_that_is_not_json_is_a_415(client):
    _problem(await client.post("/notes", content=b"resource_id=r1", headers={"content-type": "application/x-www-form-urlencoded"}),
             415, "unsupported-media-type")
    assert await _rows(client.services) == 0


async def test_an_oversized_body_is_a_413_whether_declared_or_streamed(client):
    limit = client.services.settings.max_body_bytes
    big = json.dumps({"resource_id": "r", "count": 1, "pad": "x" * limit}).encode()
    _problem(await client.post("/notes", content=big, headers={"content-type": "application/json"}), 413, "payload-too-large")

    async def chunks():  # no Content-Length: the limit must hold while streaming
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536

    _problem(await client.post("/notes", content=chunks(), headers={"content-type": "application/json"}), 413, "payload-too-large")
    assert await _rows(client.services) == 0


async def test_unknown_query_parameters_are_422(client):
    _problem(await client.post("/notes?debug=1", json={"resource_id": "r1", "count": 1}), 422, "validation-failed")
    assert await _rows(client.services) == 0


async def test_unknown_path_is_404_and_wrong_method_405(client):
    _problem(await client.get("/nowhere"), 404, "not-found")
    _problem(await client.delete("/notes"), 405, "method-not-allowed")


async def test_protected_operation_needs_a_caller_and_the_right_role(client):
    body = _problem(await client.get("/admins-only"), 401, "unauthenticated")
    assert body["detail"]
    _problem(await client.get("/admins-only", headers={"x-test-role": "doctor"}), 403, "forbidden")
    assert (await client.get("/admins-only", headers={"x-test-role": "admin"})).json() == {"ok": True}


async def test_an_internal_error_is_a_500_that_leaks_nothing(client, caplog):
    caplog.set_level(logging.INFO, logger="medflow")
    body = _problem(await client.get("/broken"), 500, "internal-error")
    assert PATIENT_NAME not in json.dumps(body)
    assert PATIENT_NAME not in _logged(caplog)
    assert any(getattr(r, "error_type", None) == "ValueError" for r in caplog.records)  # for the operator


async def test_a_response_outside_its_schema_is_never_sent(client, caplog):
    caplog.set_level(logging.INFO, logger="medflow")
    body = _problem(await client.get("/bad-response"), 500, "internal-error")
    assert PATIENT_NAME not in json.dumps(body) and PATIENT_NAME not in _logged(caplog)


async def test_traceparent_is_continued_and_returned(client):
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    response = await client.post("/notes", json={"resource_id": "r1", "count": 1}, headers={"traceparent": parent})
    assert response.headers["traceparent"].startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")
    async with client.services.db.connect() as conn:
        trace_id = (await conn.execute(sa.select(audit_log.c.trace_id))).scalar_one()
    assert trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_one_structured_log_line_per_request_without_body_data(client, caplog):
    caplog.set_level(logging.INFO, logger="medflow.http")
    await client.post("/notes", json={"resource_id": PATIENT_NAME, "count": 1})
    lines = [r for r in caplog.records if r.name == "medflow.http" and r.getMessage() == "request"]
    assert len(lines) == 1
    line = lines[0]
    assert (line.function, line.operation, line.status) == ("probe", "probe.write_note", 201)
    assert line.latency_ms >= 0 and len(line.trace_id) == 32
    assert PATIENT_NAME not in _logged(caplog)


async def test_a_dependency_outage_is_a_retryable_503(client):
    body = _problem(await client.get("/dependency-down"), 503, "temporarily-unavailable")
    assert "redis" not in body["detail"]
