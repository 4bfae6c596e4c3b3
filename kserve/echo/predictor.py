"""KServe predictor (v2) of the echo model.

Request: ``clip`` BYTES [n]: a multi-frame DICOM cine clip per case (at least 16 frames;
16 are sampled evenly and resized to 112x112).
Response: ``ejection_fraction`` FP32 [n, 1] (%), ``contour`` FP32 [n, 32, 2]
(left-ventricle contour points, x and y as fractions of the frame's width and height).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from kserve import InferOutput
from kserve.errors import InvalidInput

from medflow.inference.images import ImageError, decode_clip
from medflow.inference.predictor import DiagnosticPredictor, ModelSpec, TensorSpec, decode_bytes

HERE = Path(__file__).resolve().parent
FRAMES, SIZE, POINTS = 16, 112, 32


class Predictor(DiagnosticPredictor):
    spec = ModelSpec(
        name="echo", version="1",
        inputs=(TensorSpec("clip", "BYTES", (-1,), f"multi-frame DICOM cine clip, at least {FRAMES} frames"),),
        outputs=(TensorSpec("ejection_fraction", "FP32", (-1, 1)), TensorSpec("contour", "FP32", (-1, POINTS, 2))),
        demo_folder=HERE, max_batch=4,
    )

    def prepare(self, tensors):
        clips = []
        for i, item in enumerate(tensors["clip"]):
            try:
                clips.append(decode_clip(decode_bytes(item, f"clip[{i}]"), FRAMES, SIZE))
            except ImageError as exc:
                raise InvalidInput(f"clip[{i}]: {exc}") from None
        return {"clip": np.stack(clips)}

    def respond(self, outputs, tensors):
        ef = outputs["ejection_fraction"].astype(np.float32)
        contour = outputs["contour"].astype(np.float32)
        return [InferOutput("ejection_fraction", list(ef.shape), "FP32", ef, parameters={"unit": "%"}),
                InferOutput("contour", list(contour.shape), "FP32", contour,
                            parameters={"coordinates": "x,y as fractions of the frame"})]
