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


def fit(model, batch, loss, steps: int, lr: float = 3e-3, time_budget_s: float = 40.0) -> float:
    """Train ``model`` for ``steps`` steps (or until ``time_budget_s``) on ``batch(step)`` ->
    (inputs tuple, targets); returns the last loss. Seeded by the caller; the time budget keeps
    a run under a minute on a busy 2-core machine (fewer steps then: the result is logged)."""
    import time

    import torch
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    model.train()
    started, value = time.monotonic(), float("nan")
    for step in range(steps):
        inputs, targets = batch(step)
        opt.zero_grad()
        out = loss(model(*inputs), targets)
        out.backward()
        opt.step()
        value = float(out)
        if time.monotonic() - started > time_budget_s:
            print(f"time budget reached after {step + 1} of {steps} steps")
            break
    model.eval()
    return value


def save_state(model, path: Path) -> None:
    """Weights in half precision (the demo files stay small); loaded back as float32."""
    import torch
    torch.save({k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}, path)


def load_state(model, path: Path):
    import torch
    state = torch.load(path, weights_only=True)
    model.load_state_dict({k: (v.float() if v.is_floating_point() else v) for k, v in state.items()})
    return model.eval()
