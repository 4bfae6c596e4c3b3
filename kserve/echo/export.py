"""Export the echo network to ONNX (dynamic batch; 16 frames of 112x112)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .model import FRAMES, SIZE

HERE = Path(__file__).resolve().parent


def load_torch(folder: Path = HERE):
    from medflow.inference.torch_tools import load_state
    from .model import EchoNet
    return load_state(EchoNet(), folder / "weights.pt")


def example(batch: int = 2) -> dict[str, np.ndarray]:
    return {"clip": np.random.default_rng(0).random((batch, 1, FRAMES, SIZE, SIZE), np.float32)}


def export(folder: Path = HERE) -> Path:
    from medflow.inference.torch_tools import export_onnx
    return export_onnx(load_torch(folder), example(), ["ejection_fraction", "contour"], folder / "model.onnx")


if __name__ == "__main__":
    print(export())
