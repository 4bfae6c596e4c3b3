"""Every diagnostic model over HTTP on the real KServe model server (Open Inference
Protocol v2): its demo request answers the declared outputs, labelled not for clinical use;
bad requests get a v2 error ({"error": ...}) and the server keeps serving."""

from __future__ import annotations

import asyncio

import pytest

from medflow.inference.catalog import available, model_module

MODELS = available()


def test_every_model_of_the_issue_is_in_the_checkout():
    assert "urinalysis" in MODELS


async def test_server_lists_the_models_and_is_ready(models_client):
    listed = (await models_client.get("/v2/models")).json()["models"]
    assert sorted(listed) == sorted(MODELS)
    for name in MODELS:
        assert (await models_client.get(f"/v2/models/{name}/ready")).json()["ready"] is True


@pytest.mark.parametrize("name", MODELS)
async def test_metadata_declares_inputs_and_outputs(models_client, name):
    meta = (await models_client.get(f"/v2/models/{name}")).json()
    spec = model_module(name, "predictor").Predictor.spec
    assert [i["name"] for i in meta["inputs"]] == [t.name for t in spec.inputs]
    assert [o["name"] for o in meta["outputs"]] == [t.name for t in spec.outputs]


@pytest.mark.parametrize("name", MODELS)
async def test_demo_request_answers_every_output_labelled_not_for_clinical_use(models_client, name):
    request = model_module(name, "demo").request()
    r = await models_client.post(f"/v2/models/{name}/infer", json=request)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_name"] == name and body["model_version"] == "1"
    assert body["parameters"]["not_for_clinical_use"] is True
    assert "not for clinical use" in body["parameters"]["disclaimer"]
    assert body["parameters"]["weights"] == "demo" and body["parameters"]["engine"] == "onnxruntime"
    spec = model_module(name, "predictor").Predictor.spec
    outputs = {o["name"]: o for o in body["outputs"]}
    assert list(outputs) == [t.name for t in spec.outputs]
    cases = request["inputs"][0]["shape"][0]
    for t in spec.outputs:
        shape = outputs[t.name]["shape"]
        assert shape[0] == cases
        assert all(e == -1 or g == e for g, e in zip(shape, t.shape)), (t.name, shape)
        assert outputs[t.name]["datatype"] == t.datatype


@pytest.mark.parametrize("name", MODELS)
async def test_wrong_datatype_shape_and_names_are_v2_errors_and_the_server_keeps_serving(models_client, name):
    request = model_module(name, "demo").request()
    first = request["inputs"][0]
    wrong_type = "FP32" if first["datatype"] != "FP32" else "INT64"
    bad = [
        {"inputs": [{**first, "datatype": wrong_type}] + request["inputs"][1:]},
        {"inputs": [{**first, "shape": first["shape"] + [1, 1]}] + request["inputs"][1:]},
        {"inputs": request["inputs"] + [{"name": "surprise", "datatype": "FP32", "shape": [1], "data": [1.0]}]},
        {"inputs": request["inputs"][1:]},
    ]
    for body in bad:
        r = await models_client.post(f"/v2/models/{name}/infer", json=body)
        assert r.status_code == 400, r.text
        assert isinstance(r.json()["error"], str) and r.json()["error"]
    ok = await models_client.post(f"/v2/models/{name}/infer", json=request)
    assert ok.status_code == 200


async def test_unknown_model_and_unknown_version_are_404_known_version_served(models_client):
    request = model_module("urinalysis", "demo").request()
    r = await models_client.post("/v2/models/no_such_model/infer", json=request)
    assert r.status_code == 404 and "no_such_model" in r.json()["error"]
    r = await models_client.post("/v2/models/urinalysis/versions/9/infer", json=request)
    assert r.status_code == 404 and "version" in r.json()["error"]
    r = await models_client.post("/v2/models/no_such_model/versions/1/infer", json=request)
    assert r.status_code == 404 and "no_such_model" in r.json()["error"]
    r = await models_client.post("/v2/models/urinalysis/versions/1/infer", json=request)
    assert r.status_code == 200
    assert (await models_client.get("/v2/models/urinalysis/versions/1/ready")).json()["ready"] is True


@pytest.mark.parametrize("name", MODELS)
async def test_concurrent_requests_share_engine_calls(models_client, name):
    request = model_module(name, "demo").request(1)
    answers = await asyncio.gather(*[models_client.post(f"/v2/models/{name}/infer", json=request)
                                     for _ in range(12)])
    assert all(a.status_code == 200 for a in answers)
    sizes = [a.json()["parameters"]["batch_size"] for a in answers]
    assert max(sizes) > 1, sizes  # requests waited (bounded) for each other and ran as one batch
    assert max(sizes) <= model_module(name, "predictor").Predictor.spec.max_batch
