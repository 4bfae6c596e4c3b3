"""Inference engines behind the predictors: TensorRT on a GPU node when an engine is
present, else ONNX Runtime on the CPU. Both take and give ``{name: numpy array}``
with the batch on axis 0, so the predictor and the batcher never ask which one runs.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Protocol

import numpy as np

log = logging.getLogger("medflow.inference")

ONNX_FILE = "model.onnx"
ENGINE_FILE = "model.plan"  # a serialized TensorRT engine (built by medflow.inference.tensorrt_build)


class Engine(Protocol):
    kind: str
    input_names: list[str]
    output_names: list[str]

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


class OnnxRuntimeEngine:
    """ONNX Runtime on the CPU. ``threads`` bounds intra-op threads (0: ONNX Runtime's default)."""

    kind = "onnxruntime"

    def __init__(self, path: Path, threads: int = 0):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self.session.run(self.output_names, {k: inputs[k] for k in self.input_names})
        return dict(zip(self.output_names, outputs))


class TensorRTEngine:  # pragma: no cover - needs a GPU and the tensorrt package: not run here
    """A serialized TensorRT engine executed with TensorRT's tensor-address API
    (``set_input_shape``/``set_tensor_address``/``execute_async_v3``, TensorRT 10 and 11),
    device buffers held by torch (CUDA) for simplicity."""

    kind = "tensorrt"

    def __init__(self, path: Path):
        import tensorrt as trt
        import torch

        self._torch = torch
        self._logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self._logger)
        self.engine = self.runtime.deserialize_cuda_engine(Path(path).read_bytes())
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        mode = trt.TensorIOMode.INPUT
        self.input_names = [n for n in names if self.engine.get_tensor_mode(n) == mode]
        self.output_names = [n for n in names if self.engine.get_tensor_mode(n) != mode]
        self._trt = trt

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch, trt = self._torch, self._trt
        stream = torch.cuda.current_stream()
        keep = []
        for name in self.input_names:
            dtype = trt.nptype(self.engine.get_tensor_dtype(name))
            tensor = torch.from_numpy(np.ascontiguousarray(inputs[name], dtype=dtype)).cuda()
            keep.append(tensor)
            self.context.set_input_shape(name, tuple(tensor.shape))
            self.context.set_tensor_address(name, tensor.data_ptr())
        outputs = {}
        for name in self.output_names:
            shape = tuple(self.context.get_tensor_shape(name))
            dtype = trt.nptype(self.engine.get_tensor_dtype(name))
            out = torch.empty(shape, dtype=torch.from_numpy(np.zeros(0, dtype=dtype)).dtype, device="cuda")
            self.context.set_tensor_address(name, out.data_ptr())
            outputs[name] = out
        self.context.execute_async_v3(stream.cuda_stream)
        stream.synchronize()
        return {k: v.cpu().numpy() for k, v in outputs.items()}  # each in its own type: word ids stay integers


def gpu_available() -> bool:
    """A CUDA device is visible (nvidia-smi on the path and not hidden by CUDA_VISIBLE_DEVICES)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return shutil.which("nvidia-smi") is not None


def open_engine(model_dir: Path, *, prefer_gpu: bool = True, threads: int = 0) -> Engine:
    """TensorRT when ``model.plan`` is in ``model_dir``, a GPU is there and tensorrt imports;
    otherwise ONNX Runtime on ``model.onnx``."""
    plan = Path(model_dir) / ENGINE_FILE
    if prefer_gpu and plan.exists() and gpu_available():  # pragma: no cover - no GPU here
        try:
            return TensorRTEngine(plan)
        except Exception as exc:  # tensorrt missing or the engine built for another GPU
            log.warning("TensorRT engine not usable, falling back to ONNX Runtime: %s", type(exc).__name__)
    return OnnxRuntimeEngine(Path(model_dir) / ONNX_FILE, threads=threads)
