"""The shipped ONNX exports are the PyTorch models: ONNX Runtime's outputs match PyTorch
eager's on the shipped demo weights, at batch 1 and 3 (the batch axis is dynamic)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from medflow.inference.catalog import MODELS, model_folder, model_module

torch = pytest.importorskip("torch", reason="PyTorch comes with the train extra (the test command installs it)")


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("batch", [1, 3])
def test_onnx_runtime_matches_pytorch(name, batch):
    export = model_module(name, "export")
    model = export.load_torch()
    inputs = export.example(batch)
    with torch.no_grad():
        expected = model(*[torch.from_numpy(v) for v in inputs.values()])
    expected = [e.numpy() for e in (expected if isinstance(expected, tuple) else (expected,))]
    session = ort.InferenceSession(str(model_folder(name) / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, inputs)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.shape == e.shape and g.shape[0] == batch
        if e.dtype.kind in "iu":  # generated word ids: greedy decoding may flip on a near tie
            assert (g == e).mean() > 0.95
        else:
            np.testing.assert_allclose(g, e, rtol=1e-3, atol=2e-4)


@pytest.mark.parametrize("name", MODELS)
def test_demo_weights_are_small(name):
    for f in ("model.onnx", "weights.pt"):
        assert (model_folder(name) / f).stat().st_size < 5 * 1024 * 1024
