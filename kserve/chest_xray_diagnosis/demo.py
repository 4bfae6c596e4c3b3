"""Demo v2 request for the chest X-ray diagnosis: generated radiographs (one DICOM, one PNG)."""

from __future__ import annotations

import base64

import numpy as np

from medflow.inference.images import dicom_bytes, png_bytes

from ..common.synthetic import chest_xray, cxr_labels, indication


def request(n: int = 2, seed: int = 5) -> dict:
    rng = np.random.default_rng(seed)
    images, texts = [], []
    for i in range(n):
        labels = cxr_labels(rng)
        img = chest_xray(rng, labels, 512)
        images.append(base64.b64encode(dicom_bytes(img) if i % 2 == 0 else png_bytes(img)).decode())
        texts.append(indication(rng, labels))
    return {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [n], "data": images},
                       {"name": "indication", "datatype": "BYTES", "shape": [n], "data": texts}]}
