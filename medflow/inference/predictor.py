"""The KServe predictor every diagnostic model shares (Open Inference Protocol v2).

A model supplies a :class:`ModelSpec` (the request and response tensors), ``prepare``
(request tensors -> engine inputs, raising :class:`kserve.errors.InvalidInput` for bad
input; run in a worker thread so decoding overlaps the engine running other requests) and
``respond`` (engine outputs -> response tensors). The base class checks names, datatypes
and shapes against the spec, batches concurrent requests (bounded wait), picks TensorRT or
ONNX Runtime, loads weights from the storage URI and labels every response as not for
clinical use.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from kserve import InferOutput, InferRequest, InferResponse, Model
from kserve.errors import InvalidInput

from medflow.inference import weights as weights_mod
from medflow.inference.batching import BatchResult, DynamicBatcher
from medflow.inference.engines import open_engine

log = logging.getLogger("medflow.inference")

NOT_FOR_CLINICAL_USE = ("not for clinical use: demo weights trained on generated data by the MedFlow project"
                        )
DISCLAIMER_OPERATOR = "not for clinical use unless the operator's weights at the storage URI are validated for it"

V2_NUMPY = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32, "UINT8": np.uint8,
            "BOOL": np.bool_}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str              # v2 datatype: FP32, INT64, BYTES, ...
    shape: tuple[int, ...]     # -1: any size (axis 0 is the batch of the request)
    description: str = ""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    version: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    demo_folder: Path
    max_batch: int = 16
    max_wait_ms: float = 5.0
    extra: dict = field(default_factory=dict)


def decode_bytes(value: Any, what: str) -> bytes:
    """A BYTES element: raw bytes (binary extension) or a base64 string (JSON)."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(f"{what}: expected base64-encoded bytes") from None
    raise InvalidInput(f"{what}: expected bytes")


def as_text(value: Any, what: str) -> str:
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"{what}: expected UTF-8 text") from None
    if isinstance(value, str):
        return value
    raise InvalidInput(f"{what}: expected text")


class DiagnosticPredictor(Model):
    spec: ModelSpec

    def __init__(self, name: str | None = None, *, storage_uri: str | None = None, threads: int = 0,
                 max_batch: int | None = None, max_wait_ms: float | None = None, prefer_gpu: bool = True):
        super().__init__(name or self.spec.name)
        self.storage_uri = storage_uri
        self.threads = threads
        self.prefer_gpu = prefer_gpu
        self.max_batch = max_batch or self.spec.max_batch
        self.max_wait_s = (self.spec.max_wait_ms if max_wait_ms is None else max_wait_ms) / 1000
        self.runner = None
        self.weights: weights_mod.Weights | None = None
        self.batcher: DynamicBatcher | None = None

    # --- model-specific hooks ------------------------------------------------------------
    def setup(self, folder: Path) -> None:
        """Read label lists, vocabularies, normalisation next to the weights."""

    def prepare(self, tensors: dict[str, Any]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def respond(self, outputs: dict[str, np.ndarray], tensors: dict[str, Any]) -> list[InferOutput]:
        raise NotImplementedError

    # --- KServe handlers -----------------------------------------------------------------
    def load(self) -> bool:
        self.weights = weights_mod.resolve(self.storage_uri, self.spec.demo_folder)
        self.runner = open_engine(self.weights.folder, prefer_gpu=self.prefer_gpu, threads=self.threads)
        self.setup(self.weights.folder)
        self.batcher = DynamicBatcher(self.runner.run, max_batch=self.max_batch, max_wait_s=self.max_wait_s)
        self.ready = True
        log.info("model %s ready: %s, %s weights", self.name, self.runner.kind, self.weights.source)
        return self.ready

    def get_input_types(self) -> list[dict]:
        return [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in self.spec.inputs]

    def get_output_types(self) -> list[dict]:
        return [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in self.spec.outputs]

    def validate(self, payload):  # our preprocess already checked the v2 request
        return payload

    async def preprocess(self, payload, headers=None):
        if not isinstance(payload, InferRequest):
            raise InvalidInput("this model speaks the Open Inference Protocol v2: POST /v2/models/{name}/infer")
        tensors = self.read_request(payload)
        arrays = await asyncio.to_thread(self.prepare, tensors)  # decoding overlaps other requests' inference
        return payload, tensors, arrays

    async def predict(self, payload, headers=None, response_headers=None):
        request, tensors, arrays = payload
        result = await self.batcher.submit(arrays)
        return request, tensors, result

    async def postprocess(self, result, headers=None, response_headers=None):
        request, tensors, batch = result
        assert isinstance(batch, BatchResult)
        outputs = self.respond(batch.outputs, tensors)
        demo = self.weights.source == "demo"
        return InferResponse(
            response_id=request.id or str(uuid.uuid4()), model_name=self.name, model_version=self.spec.version,
            infer_outputs=outputs,
            parameters={"not_for_clinical_use": True,
                        "disclaimer": NOT_FOR_CLINICAL_USE if demo else DISCLAIMER_OPERATOR,
                        "weights": self.weights.source, "engine": self.runner.kind,
                        "batch_size": batch.batch_size, "queue_ms": round(batch.queue_ms, 3),
                        "infer_ms": round(batch.infer_ms, 3)})

    # --- request checking ----------------------------------------------------------------
    def read_request(self, request: InferRequest) -> dict[str, Any]:
        """The request's tensors by name, checked against the spec: numeric ones as numpy
        arrays, BYTES ones as a flat list. Each request holds one or more cases on axis 0."""
        given = {i.name: i for i in request.inputs}
        expected = {t.name for t in self.spec.inputs}
        unknown = sorted(set(given) - expected)
        if unknown:
            raise InvalidInput(f"unknown input(s) {unknown}; this model takes {sorted(expected)}")
        tensors: dict[str, Any] = {}
        rows = None
        for spec in self.spec.inputs:
            inp = given.get(spec.name)
            if inp is None:
                raise InvalidInput(f"missing input {spec.name!r} ({spec.datatype} {list(spec.shape)})")
            if inp.datatype != spec.datatype:
                raise InvalidInput(f"input {spec.name!r}: datatype {inp.datatype} given, {spec.datatype} expected")
            shape = [int(s) for s in inp.shape]
            if len(shape) != len(spec.shape) or any(e != -1 and g != e for g, e in zip(shape, spec.shape)):
                raise InvalidInput(f"input {spec.name!r}: shape {shape} given, {list(spec.shape)} expected "
                                   "(-1: any size)")
            if shape[0] < 1 or shape[0] > self.max_batch:
                raise InvalidInput(f"input {spec.name!r}: between 1 and {self.max_batch} cases per request")
            if rows is not None and shape[0] != rows:
                raise InvalidInput("every input must hold the same number of cases on axis 0")
            rows = shape[0]
            if spec.datatype == "BYTES":
                data = inp.data
                if isinstance(data, np.ndarray):
                    data = data.reshape(-1).tolist()
                if not isinstance(data, list) or len(data) != int(np.prod(shape)):
                    raise InvalidInput(f"input {spec.name!r}: {int(np.prod(shape))} elements expected for shape {shape}")
                tensors[spec.name] = data
            else:
                try:
                    array = inp.as_numpy()
                except (ValueError, TypeError) as exc:
                    raise InvalidInput(f"input {spec.name!r}: data does not match datatype {spec.datatype} "
                                       f"and shape {shape}") from exc
                if array.dtype.kind == "f" and not np.isfinite(array).all():
                    raise InvalidInput(f"input {spec.name!r}: NaN or infinite values")
                tensors[spec.name] = array
        return tensors
