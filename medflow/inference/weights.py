"""Where a predictor's weights come from, following KServe's storage conventions.

On a cluster KServe's storage initializer copies ``storageUri`` to ``/mnt/models`` and the
predictor is given that folder (``--model-dir``). Run alone, a predictor fetches the URI
itself: ``s3://bucket/prefix`` (credentials and endpoint from the variables KServe's S3
secret sets: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL`` or
``S3_ENDPOINT`` with ``S3_USE_HTTPS``, ``AWS_DEFAULT_REGION``), ``file://`` or a local
folder. A location without ``model.onnx`` falls back to the demo weights shipped in
``kserve/<model>/`` (trained on generated data; not for clinical use).
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from medflow.inference.engines import ENGINE_FILE, ONNX_FILE

log = logging.getLogger("medflow.inference")

WANTED = (ONNX_FILE, ENGINE_FILE, "labels.json", "vocab.json", "normalisation.json")


@dataclass(frozen=True)
class Weights:
    folder: Path
    source: str  # "storage" (operator's weights) or "demo" (shipped, generated data)


def _s3_client():
    import boto3
    from botocore.config import Config

    endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("S3_ENDPOINT")
    if endpoint and "://" not in endpoint:
        scheme = "https" if os.environ.get("S3_USE_HTTPS", "1") not in ("0", "false") else "http"
        endpoint = f"{scheme}://{endpoint}"
    return boto3.client("s3", endpoint_url=endpoint, region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
                        config=Config(connect_timeout=5, read_timeout=60, retries={"max_attempts": 3}))


def _download_s3(uri: str, dest: Path) -> Path:
    parsed = urlparse(uri)
    bucket, prefix = parsed.netloc, parsed.path.lstrip("/")
    client = _s3_client()
    prefix = prefix.rstrip("/") + "/" if prefix else ""
    for name in WANTED:
        try:
            client.download_file(bucket, prefix + name, str(dest / name))
        except Exception as exc:  # noqa: BLE001 - absent optional files are normal
            code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
            if code not in ("404", "NoSuchKey", "NotFound"):
                raise
    return dest


def resolve(storage_uri: str | None, demo_folder: Path, cache_dir: Path | None = None) -> Weights:
    """The folder holding the weights to serve: the operator's at ``storage_uri``, else the demo's."""
    if storage_uri:
        parsed = urlparse(storage_uri)
        if parsed.scheme == "s3":
            dest = Path(tempfile.mkdtemp(prefix="medflow-weights-", dir=cache_dir))
            folder = _download_s3(storage_uri, dest)
        elif parsed.scheme in ("", "file"):
            folder = Path(parsed.path if parsed.scheme else storage_uri)
        else:
            raise ValueError(f"unsupported storage URI scheme {parsed.scheme!r} (s3://, file:// or a folder)")
        if (folder / ONNX_FILE).exists() or (folder / ENGINE_FILE).exists():
            return Weights(folder, "storage")
        log.warning("no %s at the storage URI: serving the shipped demo weights", ONNX_FILE)
    return Weights(demo_folder, "demo")
