"""KServe predictor (v2) of the chest X-ray MMBT.

Request: ``image`` BYTES [n] (DICOM, PNG or JPEG; base64 in JSON or raw with the binary
extension), ``indication`` BYTES [n] (clinical indication, free text).
Response: ``probabilities`` FP32 [n, 8] (labels in the output's ``labels`` parameter) and
``findings`` BYTES [n] (labels at or above 0.5, comma-separated).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from kserve import InferOutput
from kserve.errors import InvalidInput

from medflow.inference.images import ImageError, decode_image
from medflow.inference.predictor import DiagnosticPredictor, ModelSpec, TensorSpec, as_text, decode_bytes
from medflow.inference.text import Tokenizer

HERE = Path(__file__).resolve().parent
SIZE = 512


def multilabel_outputs(probs: np.ndarray, labels: list[str]) -> list[InferOutput]:
    probs = probs.astype(np.float32)
    findings = [",".join(lab for lab, p in zip(labels, row) if p >= 0.5) for row in probs]
    return [InferOutput("probabilities", list(probs.shape), "FP32", probs, parameters={"labels": ",".join(labels)}),
            InferOutput("findings", [len(findings)], "BYTES", findings)]


def decode_images(items: list, size: int, channels: int = 1, name: str = "image") -> np.ndarray:
    out = []
    for i, item in enumerate(items):
        try:
            out.append(decode_image(decode_bytes(item, f"{name}[{i}]"), size, channels))
        except ImageError as exc:
            raise InvalidInput(f"{name}[{i}]: {exc}") from None
    return np.stack(out)


class Predictor(DiagnosticPredictor):
    spec = ModelSpec(
        name="chest_xray_diagnosis", version="1",
        inputs=(TensorSpec("image", "BYTES", (-1,), "chest radiograph: DICOM, PNG or JPEG"),
                TensorSpec("indication", "BYTES", (-1,), "clinical indication text")),
        outputs=(TensorSpec("probabilities", "FP32", (-1, -1)), TensorSpec("findings", "BYTES", (-1,))),
        demo_folder=HERE, max_batch=8,
    )

    def setup(self, folder: Path) -> None:
        vocab = json.loads((folder / "vocab.json").read_text())
        self.tokenizer = Tokenizer(vocab["vocab"], vocab["text_len"])
        self.labels = json.loads((folder / "labels.json").read_text())["labels"]

    def prepare(self, tensors):
        images = decode_images(tensors["image"], SIZE)
        texts = [as_text(t, f"indication[{i}]") for i, t in enumerate(tensors["indication"])]
        return {"image": images, "tokens": self.tokenizer.encode_batch(texts)}

    def respond(self, outputs, tensors):
        return multilabel_outputs(outputs["probabilities"], self.labels)
