"""Demo v2 request for the tongue diagnosis: generated photographs (JPEG), descriptions, attributes."""

from __future__ import annotations

import base64
import io

import numpy as np

from ..common.synthetic import tongue


def _jpeg(rgb: np.ndarray) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray((rgb * 255).astype(np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def request(n: int = 2, seed: int = 9) -> dict:
    rng = np.random.default_rng(seed)
    items = [tongue(rng, int(rng.integers(0, 6)), 512) for _ in range(n)]
    return {"inputs": [
        {"name": "image", "datatype": "BYTES", "shape": [n], "data": [base64.b64encode(_jpeg(i[0])).decode() for i in items]},
        {"name": "description", "datatype": "BYTES", "shape": [n], "data": [i[2] for i in items]},
        {"name": "attributes", "datatype": "FP32", "shape": [n, 8], "data": np.stack([i[1] for i in items]).ravel().tolist()},
    ]}
