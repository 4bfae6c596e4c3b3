"""Export the tongue network to ONNX (dynamic batch; 512x512 RGB, 24 tokens, 8 attributes)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..common.synthetic import TONGUE_ATTRIBUTES
from .model import TEXT_LEN

HERE = Path(__file__).resolve().parent
SIZE = 512


def load_torch(folder: Path = HERE):
    from medflow.inference.torch_tools import load_state
    from .model import TongueNet
    vocab = json.loads((folder / "vocab.json").read_text())["vocab"]
    return load_state(TongueNet(len(vocab)), folder / "weights.pt")


def example(batch: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    tokens = rng.integers(4, 20, (batch, TEXT_LEN)).astype(np.int64)
    tokens[:, 8:] = 0
    return {"image": rng.random((batch, 3, SIZE, SIZE), np.float32), "tokens": tokens,
            "attributes": (rng.random((batch, len(TONGUE_ATTRIBUTES))) < 0.3).astype(np.float32)}


def export(folder: Path = HERE) -> Path:
    from medflow.inference.torch_tools import export_onnx
    return export_onnx(load_torch(folder), example(), ["probabilities"], folder / "model.onnx")


if __name__ == "__main__":
    print(export())
