"""The run command's server, over real HTTP: every function under /api/<name>/, the
merged OpenAPI document, the reference page, the demo data, in-process events."""

from __future__ import annotations

import sqlite3

import httpx
import jsonschema
import pytest
from openapi_spec_validator import validate

from support_processes import free_port, running, serve_command
from medflow.runtime.openapi import openapi_path
from medflow.runtime.registry import load_specs
from medflow.runtime.spec import HttpFunction


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("server")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"MEDFLOW_DATA_DIR": str(data), "MEDFLOW_PUBLIC_BASE_URL": base}
    with running(serve_command(port, "--demo"), env, data / "server.log", f"{base}/healthz"):
        yield base, data


def _component(document: dict, response: httpx.Response, path: str, method: str = "get") -> dict:
    """The schema the document declares for this response's status and content type."""
    declared = document["paths"][path][method]["responses"][str(response.status_code)]
    media = response.headers["content-type"].split(";")[0]
    schema = declared["content"][media]["schema"]
    return {**schema, "components": document["components"]}


def _conforms(document: dict, response: httpx.Response, path: str) -> None:
    schema = _component(document, response, path)
    resolver_schema = {"$ref": schema["$ref"], "components": document["components"]}
    jsonschema.validate(response.json(), resolver_schema, cls=jsonschema.Draft202012Validator)


def test_healthz_reports_every_dependency(server):
    base, _ = server
    body = httpx.get(f"{base}/healthz").json()
    assert body["status"] == "ok" and body["checks"] == {"database": True, "cache": True, "objects": True}
    assert {"directory", "audit_sink"} <= set(body["functions"])


def test_the_dictionary_reads_answer_with_the_demo_data(server):
    base, _ = server
    document = httpx.get(f"{base}/api/openapi.json").json()
    page = httpx.get(f"{base}/api/directory/institutions")
    assert page.status_code == 200
    _conforms(document, page, "/api/directory/institutions")
    names = [i["name"] for i in page.json()["items"]]
    assert "MedFlow General Hospital" in names and "和协社区诊所" in names
    hospital = next(i for i in page.json()["items"] if i["code"] == "MFGH")
    departments = httpx.get(f"{base}/api/directory/institutions/{hospital['id']}/departments")
    _conforms(document, departments, "/api/directory/institutions/{institution_id}/departments")
    assert {d["code"] for d in departments.json()["items"]} == {"CARD", "RAD", "NEPH", "TCM"}
    one = httpx.get(f"{base}/api/directory/institutions/{hospital['id']}")
    _conforms(document, one, "/api/directory/institutions/{institution_id}")


def test_keyset_pages_walk_every_institution_once(server):
    base, _ = server
    seen, cursor = [], None
    while True:
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        body = httpx.get(f"{base}/api/directory/institutions", params=params).json()
        seen += [i["id"] for i in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    all_at_once = [i["id"] for i in httpx.get(f"{base}/api/directory/institutions").json()["items"]]
    assert seen == all_at_once and len(seen) == len(set(seen)) >= 3


def test_errors_are_problem_json_that_match_the_document(server):
    base, _ = server
    document = httpx.get(f"{base}/api/openapi.json").json()
    missing = httpx.get(f"{base}/api/directory/institutions/01J0000000000000000000NONE")
    assert missing.status_code == 404
    _conforms(document, missing, "/api/directory/institutions/{institution_id}")
    too_big = httpx.get(f"{base}/api/directory/institutions", params={"limit": 100000})
    assert too_big.status_code == 422
    _conforms(document, too_big, "/api/directory/institutions")
    assert httpx.get(f"{base}/api/nosuchfunction/x").status_code == 404


def test_the_document_is_valid_openapi_and_lists_every_operation(server):
    base, _ = server
    document = httpx.get(f"{base}/api/openapi.json").json()
    validate(document)
    assert document["openapi"] == "3.1.0"
    declared = {(openapi_path(f"/api/{spec.name}", op.path), op.method.lower())
                for spec in load_specs() if isinstance(spec, HttpFunction) for op in spec.operations}
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert declared and declared == documented


def test_the_reference_page_is_served_without_external_assets(server):
    base, _ = server
    page = httpx.get(f"{base}/api/docs")
    assert page.status_code == 200 and "MedFlow API reference" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN


def test_demo_seeding_went_through_the_bus_into_the_audit_trail(server):
    _, data = server
    with sqlite3.connect(data / "medflow.sqlite3") as conn:
        rows = conn.execute("SELECT action, source FROM audit_log WHERE resource_type = 'institution'").fetchall()
        demo = conn.execute("SELECT DISTINCT action FROM audit_log WHERE source = '/medflow/demo'").fetchall()
    assert rows and all(row == ("demo.seeded", "/medflow/demo") for row in rows)
    assert sorted(demo) == [("demo.seeded",), ("job.submitted",)]


def test_the_demo_export_job_ran_in_process_to_a_backup_batch(server):
    """The one-process server delivers job events to the job worker: the demo's export finishes."""
    import time
    _, data = server
    deadline = time.monotonic() + 60
    while True:
        with sqlite3.connect(data / "medflow.sqlite3") as conn:
            job = conn.execute("SELECT kind, state, done, result FROM jobs").fetchall()
            batches = conn.execute("SELECT mode, format, rows FROM backup_batches").fetchall()
        if (job and job[0][1] != "queued" and job[0][1] != "running") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(job) == 1 and job[0][:2] == ("export", "succeeded"), job
    assert batches == [("full", "xlsx", job[0][2])] and job[0][2] >= 6       # the demo cases


def test_metrics_are_exposed(server):
    base, _ = server
    httpx.get(f"{base}/api/directory/institutions")
    text = httpx.get(f"{base}/metrics").text
    assert 'medflow_request_seconds_count{function="directory",operation="directory.list_institutions",status="200"}' in text
    assert 'medflow_events_total{function="audit_sink",outcome="done",type="org.medflow.audit.recorded.v1"}' in text
