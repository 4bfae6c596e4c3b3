"""Weights an operator puts at a model's storage URI (S3 API: MinIO here) are served instead
of the demo weights, as KServe's storageUri promises; a URI without weights falls back to
the shipped demo weights and says so in every response."""

from __future__ import annotations

import json
import os

import boto3
import httpx
import pytest

from conftest import real_setting, unique
from medflow.inference.catalog import model_folder, model_module
from support_processes import free_port, models_command, running


@pytest.fixture
def bucket():
    endpoint = real_setting("MEDFLOW_TEST_S3_ENDPOINT")
    env = {"AWS_ACCESS_KEY_ID": real_setting("MEDFLOW_TEST_S3_ACCESS_KEY"),
           "AWS_SECRET_ACCESS_KEY": real_setting("MEDFLOW_TEST_S3_SECRET_KEY"),
           "AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": os.environ.get("MEDFLOW_TEST_S3_REGION", "us-east-1")}
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], region_name=env["AWS_DEFAULT_REGION"])
    name = unique("models-")
    s3.create_bucket(Bucket=name)
    yield s3, name, env
    for obj in s3.list_objects_v2(Bucket=name).get("Contents", []):
        s3.delete_object(Bucket=name, Key=obj["Key"])
    s3.delete_bucket(Bucket=name)


def test_operator_weights_at_the_storage_uri_are_served(bucket, tmp_path):
    s3, name, env = bucket
    folder = model_folder("urinalysis")
    s3.upload_file(str(folder / "model.onnx"), name, "urinalysis/v7/model.onnx")
    # the operator's normalisation differs: proof that their files, not the demo's, are used
    norm = json.loads((folder / "normalisation.json").read_text())
    norm["tasks"] = ["ckd", "proteinuria", "aki_risk", "uti"]
    s3.put_object(Bucket=name, Key="urinalysis/v7/normalisation.json", Body=json.dumps(norm).encode())
    port = free_port()
    cmd = models_command(port, "--models", "urinalysis,echo", "--storage-uri", f"urinalysis=s3://{name}/urinalysis/v7",
                         "--storage-uri", f"echo=s3://{name}/nothing-here")
    with running(cmd, env, tmp_path / "models.log", ready_url=f"http://127.0.0.1:{port}/v2/health/ready", timeout_s=120):
        r = httpx.post(f"http://127.0.0.1:{port}/v2/models/urinalysis/infer",
                       json=model_module("urinalysis", "demo").request(1), timeout=30)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["parameters"]["weights"] == "storage"
        assert body["parameters"]["not_for_clinical_use"] is True
        assert body["outputs"][0]["parameters"]["labels"] == "ckd,proteinuria,aki_risk,uti"
        echo = httpx.post(f"http://127.0.0.1:{port}/v2/models/echo/infer",
                          json=model_module("echo", "demo").request(1), timeout=30).json()
        assert echo["parameters"]["weights"] == "demo" and "generated data" in echo["parameters"]["disclaimer"]
