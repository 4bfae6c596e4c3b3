"""Urinalysis lab panels over HTTP: units converted, missing, implausible and unparseable
values refused with a v2 error naming the analyte (never echoing the value)."""

from __future__ import annotations

import json

import pytest

from medflow.inference.catalog import model_module

demo = model_module("urinalysis", "demo")


def _req(*panels: str) -> dict:
    return {"inputs": [{"name": "panel", "datatype": "BYTES", "shape": [len(panels)], "data": list(panels)}]}


async def _infer(client, body):
    return await client.post("/v2/models/urinalysis/infer", json=body)


async def test_si_units_give_the_same_answer_as_conventional_units(models_client):
    panel = json.loads(demo.panels(1)[0])
    si = dict(panel)
    si["serum_creatinine"] = {"value": panel["serum_creatinine"]["value"] * 88.4, "unit": "umol/L"}
    si["protein"] = {"value": panel["protein"]["value"] / 100, "unit": "g/L"}
    a = (await _infer(models_client, _req(json.dumps(panel)))).json()["outputs"][0]["data"]
    b = (await _infer(models_client, _req(json.dumps(si)))).json()["outputs"][0]["data"]
    assert a == pytest.approx(b, abs=1e-4)


async def test_bad_panels_are_v2_errors_naming_the_analyte(models_client):
    panel = json.loads(demo.panels(1)[0])
    missing = {k: v for k, v in panel.items() if k != "egfr"}
    high = {**panel, "ph": {"value": 14.2}}
    unit = {**panel, "serum_creatinine": {"value": 1.1, "unit": "mg/L"}}
    text = {**panel, "glucose": {"value": "high", "unit": "mg/dL"}}
    for bad, words in [(missing, ["missing", "egfr"]), (high, ["ph", "range"]),
                       (unit, ["serum_creatinine", "unit"]), (text, ["glucose", "number"])]:
        r = await _infer(models_client, _req(json.dumps(panel), json.dumps(bad)))
        assert r.status_code == 400
        error = r.json()["error"]
        assert error.startswith("panel[1]") and all(w in error for w in words), error
    r = await _infer(models_client, _req("{not json"))
    assert r.status_code == 400 and "JSON" in r.json()["error"]
    assert "14.2" not in (await _infer(models_client, _req(json.dumps(high)))).json()["error"]
    assert (await _infer(models_client, _req(json.dumps(panel)))).status_code == 200


async def test_findings_follow_the_probabilities(models_client):
    body = (await _infer(models_client, demo.request(4))).json()
    probs = body["outputs"][0]
    labels = probs["parameters"]["labels"].split(",")
    rows = [probs["data"][i * 4:(i + 1) * 4] for i in range(4)]
    for row, findings in zip(rows, body["outputs"][1]["data"]):
        assert (findings.split(",") if findings else []) == [lab for lab, p in zip(labels, row) if p >= 0.5]
