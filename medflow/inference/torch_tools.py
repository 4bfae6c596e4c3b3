"""PyTorch side of the models (training on generated data, ONNX export). Imports torch:
only ``kserve/<model>/train.py`` and ``export.py`` and the parity tests use it; serving does not."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np


def seed_everything(seed: int) -> None:
    import torch
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def export_onnx(model, example: dict[str, "np.ndarray"], output_names: list[str], path: Path,
                seq_axes: dict[str, int] | None = None, opset: int = 18) -> Path:
    """Export ``model`` (called with the example inputs as keyword arguments, in order) to
    ONNX with a dynamic batch axis 0 on every input and output (and a dynamic axis 1 on the
    inputs named in ``seq_axes``)."""
    import torch
    model.eval()
    names = list(example)
    args = tuple(torch.from_numpy(example[n]) for n in names)
    dynamic_axes = {n: {0: "batch"} for n in names + output_names}
    for name, axis in (seq_axes or {}).items():
        dynamic_axes[name][axis] = f"{name}_len"
    path = Path(path)
    with torch.no_grad():
        torch.onnx.export(model, args, str(path), input_names=names, output_names=output_names,
                          dynamic_axes=dynamic_axes, opset_version=opset, dynamo=False)
    import onnx
    onnx.checker.check_model(onnx.load(str(path)))
    return path


def torch_outputs(model, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    import torch
    model.eval()
    with torch.no_grad():
        out = model(*[torch.from_numpy(v) for v in inputs.values()])
    out = out if isinstance(out, (tuple, list)) else (out,)
    return [o.numpy() for o in out]
