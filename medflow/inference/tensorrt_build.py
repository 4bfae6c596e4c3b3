"""TensorRT engines for GPU nodes, built from the models' ONNX exports.

Target: TensorRT 11's API, which also runs on TensorRT 10.x. TensorRT 11 removed
``BuilderFlag.FP16`` (weak typing); precision now comes from the network itself, so the
graph is converted to FP16 first (onnxconverter-common, inputs and outputs kept FP32) and
built as a *strongly typed* network (``NetworkDefinitionCreationFlag.STRONGLY_TYPED``).
INT8 follows the same rule: TensorRT 11 has no implicit INT8 calibrator, so the calibration
hook produces an explicitly quantized (Q/DQ) ONNX graph from representative batches
(ONNX Runtime's static quantization) that the strongly typed builder takes as it is.

Each dynamic input gets one optimisation profile: batch 1 (min), the predictor's usual
batch (opt) and its largest batch (max).

    medflow models build-engine urinalysis [--int8]    (on a GPU node; writes model.plan)

Not run here: no GPU. The FP16 conversion, the Q/DQ calibration and the profile shapes are
tested on the CPU (tests/unit/test_tensorrt_build.py); ``build_engine`` needs TensorRT.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

Shape = tuple[int, ...]


def fp16_onnx(src: Path, dst: Path) -> Path:
    """The graph with FP16 weights and arithmetic; FP32 inputs and outputs (casts at the edges)."""
    import onnx
    from onnxconverter_common import float16

    model = onnx.load(str(src))
    converted = float16.convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False)
    _retarget_float_casts(converted.graph)
    onnx.save(converted, str(dst))
    return Path(dst)


def _retarget_float_casts(graph) -> None:
    """The converter marks a ``Cast(to=FLOAT)`` output FP16 but leaves ``to`` alone, which
    no runtime loads (microsoft/onnxconverter-common#320): such a cast now casts to FP16."""
    from onnx import TensorProto
    fp16_values = {v.name for v in graph.value_info if v.type.tensor_type.elem_type == TensorProto.FLOAT16}
    for node in graph.node:
        if node.op_type == "Cast" and node.output[0] in fp16_values:
            for attr in node.attribute:
                if attr.name == "to" and attr.i == TensorProto.FLOAT:
                    attr.i = TensorProto.FLOAT16


def input_shapes(onnx_path: Path) -> dict[str, tuple[object, ...]]:
    """Each input's shape as in the graph: ints for fixed axes, names for dynamic ones."""
    import onnx
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    shapes = {}
    for inp in graph.input:
        if inp.name in initializers:
            continue
        shapes[inp.name] = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                                 for d in inp.type.tensor_type.shape.dim)
    return shapes


def profile_shapes(shapes: dict[str, tuple[object, ...]], opt_batch: int, max_batch: int,
                   dynamic_sizes: dict[str, int] | None = None) -> dict[str, tuple[Shape, Shape, Shape]]:
    """(min, opt, max) per input for one optimisation profile: axis 0 from 1 to ``max_batch``;
    any other dynamic axis fixed at ``dynamic_sizes[input]``."""
    if not 1 <= opt_batch <= max_batch:
        raise ValueError("need 1 <= opt_batch <= max_batch")
    out = {}
    for name, dims in shapes.items():
        rest = []
        for d in dims[1:]:
            if isinstance(d, int) and d > 0:
                rest.append(d)
            elif dynamic_sizes and name in dynamic_sizes:
                rest.append(dynamic_sizes[name])
            else:
                raise ValueError(f"input {name!r}: a dynamic axis besides the batch needs a size")
        rest_t = tuple(rest)
        out[name] = ((1, *rest_t), (opt_batch, *rest_t), (max_batch, *rest_t))
    return out


class _Reader:
    def __init__(self, batches: Iterable[dict[str, np.ndarray]]):
        self._it = iter(batches)

    def get_next(self):
        return next(self._it, None)


def int8_qdq(src: Path, dst: Path, calibration: Callable[[], Iterable[dict[str, np.ndarray]]]) -> Path:
    """The INT8 calibration hook: ``calibration()`` yields representative input batches; their
    activation ranges set the scales of an explicitly quantized (QDQ) graph."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(_Reader, CalibrationDataReader):
        pass

    quantize_static(str(src), str(dst), Reader(calibration()), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True)
    return Path(dst)


def build_engine(onnx_path: Path, plan_path: Path, profiles: dict[str, tuple[Shape, Shape, Shape]],
                 workspace_gib: float = 4.0) -> Path:  # pragma: no cover - needs TensorRT and a GPU: not run here
    """Build and serialize a strongly typed engine from an FP16 (or Q/DQ INT8) ONNX graph."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in profiles.items():
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT failed to build the engine")
    Path(plan_path).write_bytes(bytes(serialized))
    return Path(plan_path)


def build_for_model(folder: Path, max_batch: int, int8_calibration=None, dynamic_sizes=None) -> Path:  # pragma: no cover
    """``folder/model.onnx`` -> FP16 (or Q/DQ INT8) graph -> ``folder/model.plan``."""
    src = Path(folder) / "model.onnx"
    if int8_calibration is not None:
        graph = int8_qdq(src, Path(folder) / "model.int8.onnx", int8_calibration)
    else:
        graph = fp16_onnx(src, Path(folder) / "model.fp16.onnx")
    profiles = profile_shapes(input_shapes(graph), max(1, max_batch // 2), max_batch, dynamic_sizes)
    return build_engine(graph, Path(folder) / "model.plan", profiles)
