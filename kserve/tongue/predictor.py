"""KServe predictor (v2) of the tongue diagnosis.

Request: ``image`` BYTES [n] (JPEG or PNG photograph; DICOM accepted), ``description``
BYTES [n] (free text), ``attributes`` FP32 [n, 8] (0..1 each; names in the model's
metadata and the model card).
Response: ``probabilities`` FP32 [n, 6] (syndromes in the ``labels`` parameter) and
``syndrome`` BYTES [n] (the most probable).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from kserve import InferOutput
from kserve.errors import InvalidInput

from medflow.inference.predictor import DiagnosticPredictor, ModelSpec, TensorSpec, as_text
from medflow.inference.text import Tokenizer

from ..chest_xray_diagnosis.predictor import decode_images
from ..common.synthetic import TONGUE_ATTRIBUTES

HERE = Path(__file__).resolve().parent
SIZE = 512


class Predictor(DiagnosticPredictor):
    spec = ModelSpec(
        name="tongue", version="1",
        inputs=(TensorSpec("image", "BYTES", (-1,), "tongue photograph: JPEG or PNG"),
                TensorSpec("description", "BYTES", (-1,), "patient's description"),
                TensorSpec("attributes", "FP32", (-1, len(TONGUE_ATTRIBUTES)), ",".join(TONGUE_ATTRIBUTES))),
        outputs=(TensorSpec("probabilities", "FP32", (-1, -1)), TensorSpec("syndrome", "BYTES", (-1,))),
        demo_folder=HERE, max_batch=8,
    )

    def setup(self, folder: Path) -> None:
        vocab = json.loads((folder / "vocab.json").read_text())
        self.tokenizer = Tokenizer(vocab["vocab"], vocab["text_len"])
        self.labels = json.loads((folder / "labels.json").read_text())["labels"]

    def prepare(self, tensors):
        attrs = tensors["attributes"].astype(np.float32)
        if ((attrs < 0) | (attrs > 1)).any():
            raise InvalidInput("attributes: each value between 0 and 1")
        texts = [as_text(t, f"description[{i}]") for i, t in enumerate(tensors["description"])]
        return {"image": decode_images(tensors["image"], SIZE, channels=3),
                "tokens": self.tokenizer.encode_batch(texts), "attributes": attrs}

    def respond(self, outputs, tensors):
        probs = outputs["probabilities"].astype(np.float32)
        names = [self.labels[i] for i in probs.argmax(-1)]
        return [InferOutput("probabilities", list(probs.shape), "FP32", probs, parameters={"labels": ",".join(self.labels)}),
                InferOutput("syndrome", [len(names)], "BYTES", names)]
