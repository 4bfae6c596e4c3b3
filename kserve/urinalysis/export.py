"""Export the trained urinalysis MLP to ONNX (dynamic batch): ``model.onnx``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .panel import ANALYTES

HERE = Path(__file__).resolve().parent


def load_torch(folder: Path = HERE):
    import torch
    from .model import UrinalysisMLP
    model = UrinalysisMLP()
    model.load_state_dict(torch.load(folder / "weights.pt", weights_only=True))
    return model.eval()


def example(batch: int = 2) -> dict[str, np.ndarray]:
    return {"features": np.random.default_rng(0).normal(size=(batch, len(ANALYTES))).astype(np.float32)}


def export(folder: Path = HERE) -> Path:
    from medflow.inference.torch_tools import export_onnx
    return export_onnx(load_torch(folder), example(), ["probabilities"], folder / "model.onnx")


if __name__ == "__main__":
    print(export())
