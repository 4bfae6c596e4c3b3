"""Export the report generator to ONNX (dynamic batch; 512x512; greedy decoding in the graph)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SIZE = 512


def load_torch(folder: Path = HERE):
    from medflow.inference.text import BOS
    from medflow.inference.torch_tools import load_state
    from .model import ReportGenerator
    vocab = json.loads((folder / "vocab.json").read_text())["vocab"]
    return load_state(ReportGenerator(len(vocab), vocab.index(BOS)), folder / "weights.pt")


def example(batch: int = 2) -> dict[str, np.ndarray]:
    return {"image": np.random.default_rng(0).random((batch, 1, SIZE, SIZE), np.float32)}


def export(folder: Path = HERE) -> Path:
    from medflow.inference.torch_tools import export_onnx
    return export_onnx(load_torch(folder), example(), ["boxes", "words", "word_probs", "region_scores"], folder / "model.onnx")


if __name__ == "__main__":
    print(export())
