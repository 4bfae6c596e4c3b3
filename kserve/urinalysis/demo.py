"""A demo v2 request for the urinalysis model: two generated panels, one in SI units."""

from __future__ import annotations

import json

from .panel import as_json, generate


def panels(n: int = 2, seed: int = 123) -> list[str]:
    x, _ = generate(n, seed=seed)
    out = [as_json(v) for v in x]
    if n > 1:  # the second in SI units: the predictor converts
        p = json.loads(out[1])
        p["serum_creatinine"] = {"value": round(p["serum_creatinine"]["value"] * 88.4, 1), "unit": "umol/L"}
        p["glucose"] = {"value": round(p["glucose"]["value"] / 18.016, 3), "unit": "mmol/L"}
        out[1] = json.dumps(p)
    return out


def request(n: int = 2) -> dict:
    data = panels(n)
    return {"inputs": [{"name": "panel", "datatype": "BYTES", "shape": [len(data)], "data": data}]}
