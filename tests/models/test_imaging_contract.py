"""Images and clips over HTTP: undecodable bytes, tiny images, text where bytes belong, a
single image where a cine clip belongs and clips with too few frames are v2 errors naming
the input; raw bytes through the v2 binary extension work as well as base64 in JSON."""

from __future__ import annotations

import base64
import json
import numpy as np
import pytest

from medflow.inference.catalog import model_module
from medflow.inference.images import dicom_bytes, png_bytes


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _with_image(name: str, data: str) -> dict:
    request = model_module(name, "demo").request(1)
    request["inputs"][0]["data"] = [data]
    return request


@pytest.mark.parametrize("name", ["chest_xray_diagnosis", "chest_xray_report", "tongue"])
@pytest.mark.parametrize("bad,words", [
    (b64(b"this is not an image at all, just some bytes"), ["image[0]", "decodable"]),
    (b64(png_bytes(np.ones((20, 30)))), ["image[0]", "too small", "30x20"]),
    ("not base64 !!", ["image[0]", "base64"]),
    (b64(dicom_bytes(np.ones((10, 100, 100)))), ["image[0]", "single-frame"]),
])
async def test_bad_images_are_v2_errors(models_client, name, bad, words):
    r = await models_client.post(f"/v2/models/{name}/infer", json=_with_image(name, bad))
    assert r.status_code == 400, r.text
    assert all(w in r.json()["error"] for w in words), r.json()


@pytest.mark.parametrize("bad,words", [
    (b64(dicom_bytes(np.random.default_rng(0).random((8, 96, 96)), "US")), ["clip[0]", "8 frames", "16"]),
    (b64(dicom_bytes(np.ones((100, 100)), "US")), ["clip[0]", "single image"]),
    (b64(png_bytes(np.ones((100, 100)))), ["clip[0]", "DICOM"]),
])
async def test_bad_clips_are_v2_errors(models_client, bad, words):
    r = await models_client.post("/v2/models/echo/infer", json=_with_image("echo", bad))
    assert r.status_code == 400
    assert all(w in r.json()["error"] for w in words), r.json()


async def test_tongue_attributes_out_of_range(models_client):
    request = model_module("tongue", "demo").request(1)
    request["inputs"][2]["data"] = [3.0] + [0.0] * 7
    r = await models_client.post("/v2/models/tongue/infer", json=request)
    assert r.status_code == 400 and "attributes" in r.json()["error"]


async def test_a_server_error_never_echoes_the_request(models_client):
    """Raw DICOM bytes through the v2 binary extension make KServe 0.21 fail (it decodes BYTES
    as UTF-8) with a message quoting the bytes; the answer must not carry them."""
    dicom = dicom_bytes(np.random.default_rng(3).random((100, 100)))
    raw = len(dicom).to_bytes(4, "little") + dicom
    header = json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                     "parameters": {"binary_data_size": len(raw)}}]}).encode()
    r = await models_client.post("/v2/models/chest_xray_report/infer", content=header + raw,
                                 headers={"content-type": "application/octet-stream",
                                          "inference-header-content-length": str(len(header))})
    assert r.status_code == 500
    assert "DEMO^GENERATED" not in r.text and "DICM" not in r.text and len(r.content) < 200
    assert r.json()["error"]
    ok = await models_client.post("/v2/models/chest_xray_report/infer",
                                  json=model_module("chest_xray_report", "demo").request(1))
    assert ok.status_code == 200
