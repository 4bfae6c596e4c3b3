"""The input of an analysis: found and fingerprinted at submission, read and turned into an
Open Inference Protocol v2 request when the task runs.

The fingerprint (``digest``) names exactly what the model will see: the model and version,
the exam item, the image's SHA-256 (or the panel's content and the patient's age), and the
parameters. The same fingerprint submitted again is the same task.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from medflow.analysis.models import TONGUE_ATTRIBUTES, ModelInput, wrong_input
from medflow.db.schema import case_items, cases, imaging_instances, imaging_series, imaging_studies, patients
from medflow.errors import PermanentError, Problem, not_found

if TYPE_CHECKING:
    from medflow.bootstrap import Services

# Lab panel analyte codes (local codes and the LOINC codes hospitals send) -> the model's names.
ANALYTE_CODES = {
    "age": "age", "specific_gravity": "specific_gravity", "5811-5": "specific_gravity", "ph": "ph", "5803-2": "ph",
    "protein": "protein", "2888-6": "protein", "glucose": "glucose", "2350-7": "glucose", "rbc": "rbc", "13945-1": "rbc",
    "wbc": "wbc", "5821-4": "wbc", "nitrite": "nitrite", "5802-4": "nitrite",
    "albumin_creatinine_ratio": "albumin_creatinine_ratio", "9318-7": "albumin_creatinine_ratio",
    "serum_creatinine": "serum_creatinine", "2160-0": "serum_creatinine", "bun": "bun", "3094-0": "bun",
    "egfr": "egfr", "33914-3": "egfr",
}


class InputGone(PermanentError):
    """The exam item or its image is no longer there: the task can never run."""


@dataclass(frozen=True)
class ResolvedInput:
    case_id: str
    item_id: str
    item_kind: str
    digest: str
    instance: dict[str, Any] | None     # the imaging instance read, for image models
    panel: dict[str, Any] | None        # the model's panel JSON, for the urinalysis model


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


async def _item(conn, institution_id: str, case_id: str, item_id: str) -> dict[str, Any]:
    row = (await conn.execute(sa.select(case_items, cases.c.patient_id, cases.c.exam_time)
                              .join(cases, cases.c.id == case_items.c.case_id)
                              .where(case_items.c.id == item_id, case_items.c.case_id == case_id,
                                     case_items.c.institution_id == institution_id, cases.c.institution_id == institution_id,
                                     case_items.c.deleted_at.is_(None), cases.c.deleted_at.is_(None)))).mappings().first()
    if row is None:
        raise not_found("exam item")
    return dict(row)


async def _instance(conn, institution_id: str, study_uid: str, patient_id: str, model: ModelInput) -> dict[str, Any]:
    found = (await conn.execute(sa.select(imaging_studies.c.id, imaging_studies.c.patient_id).where(
        imaging_studies.c.institution_id == institution_id, imaging_studies.c.study_uid == study_uid))).first()
    if found is None:
        raise wrong_input("The imaging study of this item has not been received yet.", "study-not-stored")
    study = found.id
    if found.patient_id != patient_id:
        raise wrong_input("The imaging study of this item belongs to another patient than the case.",
                          "study-of-another-patient")
    rows = (await conn.execute(
        sa.select(imaging_instances, imaging_series.c.modality)
        .join(imaging_series, imaging_series.c.id == imaging_instances.c.series_id)
        .where(imaging_instances.c.study_id == study)
        .order_by(imaging_series.c.series_number, imaging_instances.c.instance_number, imaging_instances.c.id))).mappings().all()
    modalities = sorted({r["modality"] for r in rows})
    fitting = [r for r in rows if r["modality"] in model.modalities]
    if not fitting:
        raise wrong_input(f"Model {model.name} reads {'/'.join(model.modalities)} images; this study holds "
                          f"{'/'.join(modalities) or 'no images'}.", "wrong-modality")
    framed = [r for r in fitting if (r["frames"] or 1) >= model.min_frames]
    if not framed:
        raise wrong_input(f"Model {model.name} needs a cine clip of at least {model.min_frames} frames.", "too-few-frames")
    if model.min_frames == 1:
        framed = [r for r in framed if (r["frames"] or 1) == 1] or framed
    return dict(framed[0])


def _age(birth: date | None, at: datetime) -> float | None:
    if birth is None:
        return None
    return round((at.date() - birth).days / 365.25, 1)


def panel_json(content: dict[str, Any], age: float | None) -> dict[str, Any]:
    """The model's panel (analyte name -> value and unit) from a lab panel item's analytes."""
    panel: dict[str, Any] = {}
    for analyte in content.get("analytes", []):
        name = ANALYTE_CODES.get(str(analyte.get("code", "")).lower()) or ANALYTE_CODES.get(str(analyte.get("code", "")))
        value = analyte.get("value")
        if name is None or isinstance(value, str):
            continue
        panel[name] = {"value": value, **({"unit": analyte["unit"]} if analyte.get("unit") else {})}
    if "age" not in panel and age is not None:
        panel["age"] = {"value": age, "unit": "years"}
    return panel


async def resolve(db, institution_id: str, case_id: str, item_id: str, model: ModelInput,
                  params: dict[str, Any]) -> ResolvedInput:
    """The item, checked against what the model reads, and its fingerprint (404 / 422)."""
    async with db.connect() as conn:
        item = await _item(conn, institution_id, case_id, item_id)
        if item["kind"] != model.item_kind:
            raise wrong_input(f"Model {model.name} reads a {model.item_kind.replace('_', ' ')} item, not a "
                              f"{item['kind'].replace('_', ' ')}.")
        if model.item_kind == "imaging_study":
            inst = await _instance(conn, institution_id, item["content"]["study_instance_uid"], item["patient_id"], model)
            digest = _digest(model.name, model.version, item_id, inst["sha256"], params)
            return ResolvedInput(case_id, item_id, item["kind"], digest, inst, None)
        if str(item["content"].get("panel", "")).lower() != model.panel:
            raise wrong_input(f"Model {model.name} reads a {model.panel} panel.", "wrong-panel")
        birth = (await conn.execute(sa.select(patients.c.birth_date).where(patients.c.id == item["patient_id"]))).scalar()
    panel = panel_json(item["content"], _age(birth, item["exam_time"]))
    digest = _digest(model.name, model.version, item_id, panel, params)
    return ResolvedInput(case_id, item_id, item["kind"], digest, None, panel)


async def image_bytes(services: "Services", instance: dict[str, Any]) -> bytes:
    from medflow.imaging.view import located
    from medflow.storage.ports import ObjectNotFound
    try:
        bucket, key = await located(services, instance)
        return await services.objects.get(bucket, key)
    except ObjectNotFound:
        raise InputGone("the image of this exam item is no longer stored") from None


def _bytes_tensor(name: str, data: bytes) -> dict[str, Any]:
    return {"name": name, "datatype": "BYTES", "shape": [1], "data": [base64.b64encode(data).decode()]}


def _text_tensor(name: str, text: str) -> dict[str, Any]:
    return {"name": name, "datatype": "BYTES", "shape": [1], "data": [text]}


def v2_request(model: ModelInput, task_id: str, params: dict[str, Any], image: bytes | None,
               panel: dict[str, Any] | None) -> dict[str, Any]:
    """The Open Inference Protocol v2 request of one task (one case on axis 0)."""
    if model.name == "chest_xray_diagnosis":
        inputs = [_bytes_tensor("image", image), _text_tensor("indication", params.get("indication", ""))]
    elif model.name == "chest_xray_report":
        inputs = [_bytes_tensor("image", image)]
    elif model.name == "echo":
        inputs = [_bytes_tensor("clip", image)]
    elif model.name == "urinalysis":
        inputs = [_text_tensor("panel", json.dumps(panel))]
    elif model.name == "tongue":
        attrs = params["attributes"]
        inputs = [_bytes_tensor("image", image), _text_tensor("description", params.get("description", "")),
                  {"name": "attributes", "datatype": "FP32", "shape": [1, len(TONGUE_ATTRIBUTES)],
                   "data": [float(attrs[a]) for a in TONGUE_ATTRIBUTES]}]
    else:  # pragma: no cover - MODELS names every model
        raise KeyError(model.name)
    return {"id": task_id, "inputs": inputs}


async def load_request(services: "Services", model: ModelInput, task: dict[str, Any]) -> dict[str, Any]:
    """Read the task's input again (the item may have changed since: then it is gone) and build the request."""
    try:
        resolved = await resolve(services.db, task["institution_id"], task["case_id"], task["item_id"], model,
                                 task["parameters"] or {})
    except Problem:  # 404 / 422: the item was deleted, or changed into something the model cannot read
        raise InputGone("the exam item was deleted or changed since the analysis was submitted") from None
    if resolved.digest != task["input_digest"]:
        raise InputGone("the exam item was changed since the analysis was submitted; submit it again")
    image = await image_bytes(services, resolved.instance) if resolved.instance else None
    return v2_request(model, task["id"], task["parameters"] or {}, image, resolved.panel)
