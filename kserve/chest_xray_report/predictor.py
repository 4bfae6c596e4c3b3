"""KServe predictor (v2) of the chest X-ray report generator.

Request: ``image`` BYTES [n] (DICOM, PNG or JPEG).
Response: ``boxes`` FP32 [n, 6, 4] (x0, y0, x1, y1 as fractions of the image; regions in
the ``regions`` parameter), ``region_scores`` FP32 [n, 6] (the box head's probability that
the kept proposal is that region), ``region_findings`` BYTES [n, 6] (a sentence per region),
``confidence`` FP32 [n, 6] (mean probability of the sentence's words), ``report`` BYTES [n].
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from kserve import InferOutput

from medflow.inference.predictor import DiagnosticPredictor, ModelSpec, TensorSpec
from medflow.inference.text import EOS, Tokenizer

from ..chest_xray_diagnosis.predictor import decode_images

HERE = Path(__file__).resolve().parent
SIZE, N_REGIONS = 512, 6


class Predictor(DiagnosticPredictor):
    spec = ModelSpec(
        name="chest_xray_report", version="1",
        inputs=(TensorSpec("image", "BYTES", (-1,), "chest radiograph: DICOM, PNG or JPEG"),),
        outputs=(TensorSpec("boxes", "FP32", (-1, N_REGIONS, 4)), TensorSpec("region_scores", "FP32", (-1, N_REGIONS)),
                 TensorSpec("region_findings", "BYTES", (-1, N_REGIONS)),
                 TensorSpec("confidence", "FP32", (-1, N_REGIONS)), TensorSpec("report", "BYTES", (-1,))),
        demo_folder=HERE, max_batch=8,
    )

    def setup(self, folder: Path) -> None:
        meta = json.loads((folder / "vocab.json").read_text())
        self.tokenizer = Tokenizer(meta["vocab"], 12)
        self.regions = meta["regions"]
        self.eos = meta["vocab"].index(EOS)

    def prepare(self, tensors):
        return {"image": decode_images(tensors["image"], SIZE)}

    def respond(self, outputs, tensors):
        boxes = outputs["boxes"].astype(np.float32)
        words, probs = outputs["words"], outputs["word_probs"]
        sentences, confidence = [], np.zeros(words.shape[:2], np.float32)
        for i in range(words.shape[0]):
            for r in range(words.shape[1]):
                ids = list(words[i, r])
                n = ids.index(self.eos) + 1 if self.eos in ids else len(ids)  # the words up to and with EOS
                confidence[i, r] = float(probs[i, r, :n].mean())
                sentences.append(self.tokenizer.decode(ids))
        reports = [" ".join(sentences[i * words.shape[1]:(i + 1) * words.shape[1]]) for i in range(words.shape[0])]
        scores = outputs["region_scores"].astype(np.float32)
        return [InferOutput("boxes", list(boxes.shape), "FP32", boxes, parameters={"regions": ",".join(self.regions)}),
                InferOutput("region_scores", list(scores.shape), "FP32", scores),
                InferOutput("region_findings", [words.shape[0], words.shape[1]], "BYTES", sentences),
                InferOutput("confidence", list(confidence.shape), "FP32", confidence),
                InferOutput("report", [len(reports)], "BYTES", reports)]
