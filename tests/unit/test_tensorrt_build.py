"""The CPU-testable half of the TensorRT engine builder: FP16 conversion for a strongly
typed network (FP16 weights, FP32 inputs and outputs), optimisation-profile shapes, and the
INT8 calibration hook's Q/DQ graph. Building and running an engine needs a GPU: not run here."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from medflow.inference.catalog import MODELS, model_folder, model_module
from medflow.inference.tensorrt_build import fp16_onnx, input_shapes, int8_qdq, profile_shapes


def test_fp16_graph_keeps_fp32_inputs_and_outputs_and_holds_fp16_weights(tmp_path):
    dst = fp16_onnx(model_folder("urinalysis") / "model.onnx", tmp_path / "fp16.onnx")
    model = onnx.load(str(dst))
    onnx.checker.check_model(model)
    f32, f16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
    assert all(i.type.tensor_type.elem_type == f32 for i in model.graph.input)
    assert all(o.type.tensor_type.elem_type == f32 for o in model.graph.output)
    weights = [t for t in model.graph.initializer if t.data_type in (f32, f16) and len(t.dims) > 1]
    assert weights and all(t.data_type == f16 for t in weights)
    assert dst.stat().st_size < (model_folder("urinalysis") / "model.onnx").stat().st_size * 0.75


@pytest.mark.parametrize("name", MODELS)
def test_every_fp16_graph_loads_and_answers_as_the_fp32_graph(name, tmp_path):
    """What TensorRT is given must be a valid graph: casts to FP32 inside it are retargeted
    (the converter leaves them, and no runtime loads the result)."""
    src = model_folder(name) / "model.onnx"
    inputs = model_module(name, "export").example(2)
    expected = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).run(None, inputs)
    got = ort.InferenceSession(str(fp16_onnx(src, tmp_path / "fp16.onnx")), providers=["CPUExecutionProvider"]).run(None, inputs)
    for g, e in zip(got, expected):
        assert g.dtype == e.dtype and g.shape == e.shape
        if e.dtype.kind in "iu":  # generated word ids: FP16 may flip a near tie
            assert (g == e).mean() > 0.9
        else:
            np.testing.assert_allclose(g, e, atol=0.05)


@pytest.mark.parametrize("name", MODELS)
def test_every_export_has_a_dynamic_batch_and_gets_profiles(name):
    shapes = input_shapes(model_folder(name) / "model.onnx")
    assert all(isinstance(dims[0], str) for dims in shapes.values()), shapes  # axis 0 dynamic
    profiles = profile_shapes(shapes, opt_batch=4, max_batch=8)
    for dims, (lo, opt, hi) in zip(shapes.values(), profiles.values()):
        assert (lo[0], opt[0], hi[0]) == (1, 4, 8)
        assert lo[1:] == opt[1:] == hi[1:] == tuple(dims[1:])


def test_profile_shapes_refuse_nonsense():
    with pytest.raises(ValueError):
        profile_shapes({"x": ("batch", 3)}, opt_batch=9, max_batch=8)
    with pytest.raises(ValueError):
        profile_shapes({"x": ("batch", "len")}, opt_batch=1, max_batch=8)
    assert profile_shapes({"x": ("batch", "len")}, 1, 2, {"x": 24})["x"] == ((1, 24), (1, 24), (2, 24))


def test_int8_calibration_hook_gives_a_qdq_graph_close_to_fp32(tmp_path):
    folder = model_folder("urinalysis")
    panel = model_module("urinalysis", "panel")
    predictor = model_module("urinalysis", "predictor").Predictor()
    predictor.setup(folder)
    x, _ = panel.generate(256, seed=99)
    features = ((panel.log1p_scale(x) - predictor.mean) / predictor.std).astype(np.float32)

    def calibration():
        for i in range(0, 256, 32):
            yield {"features": features[i:i + 32]}

    dst = int8_qdq(folder / "model.onnx", tmp_path / "int8.onnx", calibration)
    ops = {n.op_type for n in onnx.load(str(dst)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    fp32 = ort.InferenceSession(str(folder / "model.onnx")).run(None, {"features": features})[0]
    int8 = ort.InferenceSession(str(dst)).run(None, {"features": features})[0]
    assert np.abs(fp32 - int8).mean() < 0.03
    assert ((fp32 > 0.5) == (int8 > 0.5)).mean() > 0.95
