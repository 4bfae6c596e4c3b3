"""Demo v2 request for the echo model: generated cine clips as multi-frame DICOM."""

from __future__ import annotations

import base64

import numpy as np

from medflow.inference.images import dicom_bytes

from ..common.synthetic import echo_clip


def request(n: int = 1, seed: int = 21, frames: int = 24) -> dict:
    rng = np.random.default_rng(seed)
    clips = [base64.b64encode(dicom_bytes(echo_clip(rng, frames, 128, 32)[0], "US")).decode() for _ in range(n)]
    return {"inputs": [{"name": "clip", "datatype": "BYTES", "shape": [n], "data": clips}]}
