"""Demo v2 request for the report generator: generated radiographs (DICOM)."""

from __future__ import annotations

from ..chest_xray_diagnosis import demo as diagnosis_demo


def request(n: int = 2, seed: int = 31) -> dict:
    return {"inputs": diagnosis_demo.request(n, seed)["inputs"][:1]}
