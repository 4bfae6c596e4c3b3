"""A model's v2 response turned into the structured result a doctor reviews, and checked.

Every result keeps the model's name, version, engine and weights, and lists ``findings``
with stable keys (``f1``, ``f2``, …) that a review names: per-label probabilities (chest
X-ray, urinalysis, tongue), regions with a box or contour, a finding sentence and a
confidence (report generation), a measurement (ejection fraction). A response that does
not fit its model's output schema (missing tensors, wrong shapes, probabilities outside
0–1, boxes outside the image, non-finite numbers) is ``InvalidModelOutput``: the task
fails with that reason instead of storing something a doctor could mistake for a finding.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from medflow.errors import PermanentError

THRESHOLD = 0.5


class InvalidModelOutput(PermanentError):
    """The model answered something that does not fit its output schema."""


class Finding(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern=r"^f[0-9]{1,3}$")
    kind: Literal["label", "region", "measurement", "syndrome"]
    label: str = Field(min_length=1, max_length=100)
    probability: float | None = Field(None, ge=0, le=1)
    confidence: float | None = Field(None, ge=0, le=1)
    detection_score: float | None = Field(None, ge=0, le=1, description="how sure the detector is that the box is the region")
    text: str | None = Field(None, max_length=2000)
    value: float | None = None
    unit: str | None = None
    box: list[float] | None = Field(None, min_length=4, max_length=4, description="x0, y0, x1, y1 as fractions of the image")
    contour: list[list[float]] | None = Field(None, description="points (x, y) as fractions of the frame")

    @field_validator("box")
    @classmethod
    def _box_in_image(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and not (all(-1e-6 <= c <= 1 + 1e-6 for c in v) and v[0] <= v[2] and v[1] <= v[3]):
            raise ValueError("box outside the image or inverted")
        return v

    @field_validator("contour")
    @classmethod
    def _contour_in_frame(cls, v: list[list[float]] | None) -> list[list[float]] | None:
        if v is not None and (len(v) < 3 or any(len(p) != 2 or not all(-1e-6 <= c <= 1 + 1e-6 for c in p) for p in v)):
            raise ValueError("a contour is at least three (x, y) points inside the frame")
        return v


class AnalysisResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    model_version: str
    engine: str | None = None
    weights: str | None = None
    not_for_clinical_use: bool = True
    disclaimer: str | None = None
    probabilities: dict[str, float] | None = None
    findings: list[Finding]
    report: str | None = Field(None, max_length=20_000)
    ejection_fraction: float | None = Field(None, ge=0, le=100)
    syndrome: str | None = None
    attributes: dict[str, float] | None = None

    @field_validator("probabilities")
    @classmethod
    def _probabilities(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        if v is not None and not all(0.0 <= p <= 1.0 for p in v.values()):
            raise ValueError("a probability outside 0-1")
        return v


def _outputs(response: dict[str, Any]) -> dict[str, dict[str, Any]]:
    outputs = response.get("outputs")
    if not isinstance(outputs, list):
        raise InvalidModelOutput("the response has no outputs")
    return {o.get("name"): o for o in outputs if isinstance(o, dict)}


def _tensor(outputs: dict[str, dict[str, Any]], name: str, shape: tuple[int | None, ...]) -> list:
    """The flat data of an output, after checking it is there and has the shape expected (None: any)."""
    out = outputs.get(name)
    if out is None:
        raise InvalidModelOutput(f"output {name!r} is missing")
    got = out.get("shape") or []
    if len(got) != len(shape) or any(e is not None and g != e for g, e in zip(got, shape)):
        raise InvalidModelOutput(f"output {name!r} has shape {got}, expected {[s if s is not None else -1 for s in shape]}")
    data = out.get("data")
    if not isinstance(data, list) or len(data) != math.prod(got):
        raise InvalidModelOutput(f"output {name!r} holds {len(data) if isinstance(data, list) else 0} values for shape {got}")
    if out.get("datatype", "").startswith("FP") and not all(isinstance(x, (int, float)) and math.isfinite(x) for x in data):
        raise InvalidModelOutput(f"output {name!r} holds non-finite or non-numeric values")
    return data


def _labels(outputs: dict[str, dict[str, Any]], name: str, count: int) -> list[str]:
    labels = str((outputs[name].get("parameters") or {}).get("labels", "")).split(",")
    if len(labels) != count or not all(labels):
        raise InvalidModelOutput(f"output {name!r} names {len(labels)} labels for {count} values")
    return labels


def _probabilities(outputs: dict[str, dict[str, Any]]) -> dict[str, float]:
    shape = (outputs.get("probabilities") or {}).get("shape") or [1, 0]
    probs = _tensor(outputs, "probabilities", (1, shape[-1] if len(shape) == 2 else None))
    return {label: round(float(p), 6) for label, p in zip(_labels(outputs, "probabilities", len(probs)), probs)}


def _label_findings(probs: dict[str, float], skip: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    ranked = sorted(((p, label) for label, p in probs.items() if p >= THRESHOLD and label not in skip), reverse=True)
    return [{"kind": "label", "label": label, "probability": p} for p, label in ranked]


def _chest_diagnosis(outputs, params) -> dict[str, Any]:
    probs = _probabilities(outputs)
    return {"probabilities": probs, "findings": _label_findings(probs, skip=("no_finding",))}


def _chest_report(outputs, params) -> dict[str, Any]:
    n_regions = ((outputs.get("boxes") or {}).get("shape") or [1, 0, 4])[1]
    boxes = _tensor(outputs, "boxes", (1, n_regions, 4))
    sentences = _tensor(outputs, "region_findings", (1, n_regions))
    confidence = _tensor(outputs, "confidence", (1, n_regions))
    report = _tensor(outputs, "report", (1,))
    scores = _tensor(outputs, "region_scores", (1, n_regions)) if "region_scores" in outputs else None
    regions = str((outputs["boxes"].get("parameters") or {}).get("regions", "")).split(",")
    if len(regions) != n_regions:
        raise InvalidModelOutput("output 'boxes' names a region per box")
    findings = [{"kind": "region", "label": region, "text": str(sentences[i]), "confidence": round(float(confidence[i]), 6),
                 "box": [round(float(c), 6) for c in boxes[4 * i:4 * i + 4]]} for i, region in enumerate(regions)]
    for finding, score in zip(findings, scores or ()):
        finding["detection_score"] = round(float(score), 6)
    return {"findings": findings, "report": str(report[0])}


def _echo(outputs, params) -> dict[str, Any]:
    ef = float(_tensor(outputs, "ejection_fraction", (1, 1))[0])
    n_points = ((outputs.get("contour") or {}).get("shape") or [1, 0, 2])[1]
    flat = _tensor(outputs, "contour", (1, n_points, 2))
    contour = [[round(float(flat[2 * i]), 6), round(float(flat[2 * i + 1]), 6)] for i in range(n_points)]
    return {"ejection_fraction": round(ef, 3), "findings": [
        {"kind": "measurement", "label": "ejection_fraction", "value": round(ef, 3), "unit": "%"},
        {"kind": "region", "label": "left_ventricle", "contour": contour}]}


def _urinalysis(outputs, params) -> dict[str, Any]:
    probs = _probabilities(outputs)
    return {"probabilities": probs, "findings": _label_findings(probs)}


def _tongue(outputs, params) -> dict[str, Any]:
    probs = _probabilities(outputs)
    syndrome = str(_tensor(outputs, "syndrome", (1,))[0])
    if syndrome not in probs:
        raise InvalidModelOutput("output 'syndrome' is not one of the labels")
    return {"probabilities": probs, "syndrome": syndrome, "attributes": params.get("attributes"),
            "findings": [{"kind": "syndrome", "label": syndrome, "probability": probs[syndrome]}]}


PARSERS = {"chest_xray_diagnosis": _chest_diagnosis, "chest_xray_report": _chest_report, "echo": _echo,
           "urinalysis": _urinalysis, "tongue": _tongue}


def structured_result(model: str, version: str, response: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The checked, structured result of one v2 response (``InvalidModelOutput`` when it does not fit)."""
    if not isinstance(response, dict):
        raise InvalidModelOutput("the response is not a JSON object")
    if response.get("model_name") not in (None, model):
        raise InvalidModelOutput("the response names another model")
    parameters = response.get("parameters") or {}
    try:
        body = PARSERS[model](_outputs(response), params)
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        if isinstance(exc, InvalidModelOutput):
            raise
        raise InvalidModelOutput(f"the response does not fit the {model} outputs") from None
    body["findings"] = [{"key": f"f{i + 1}", **f} for i, f in enumerate(body["findings"])]
    try:
        result = AnalysisResult(model=model, model_version=str(response.get("model_version") or version),
                                engine=parameters.get("engine"), weights=parameters.get("weights"),
                                not_for_clinical_use=bool(parameters.get("not_for_clinical_use", True)),
                                disclaimer=parameters.get("disclaimer"), **body)
    except ValidationError as exc:
        where = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors()[:3])
        raise InvalidModelOutput(f"the {model} output fails its schema at {where}") from None
    return result.model_dump(exclude_none=True)


def model_timings(response: dict[str, Any]) -> dict[str, float]:
    """What the model server says it spent (queue and engine), in ms."""
    parameters = (response.get("parameters") or {}) if isinstance(response, dict) else {}
    return {k: float(parameters[k]) for k in ("queue_ms", "infer_ms") if isinstance(parameters.get(k), (int, float))}
