"""What each diagnostic model takes from an exam item and how its parameters are checked.

An exam item is a case item (``medflow.records.items``): the image models read an imaging
study (its first instance of a fitting modality), the urinalysis model a lab panel. The
check at submission answers 422 for the wrong kind of item or the wrong modality, so a
task is only created for an input the model can read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medflow.errors import FieldError, Problem, field_errors, validation_failed

TONGUE_ATTRIBUTES = ("red_body", "pale_body", "yellow_coating", "white_coating", "thick_coating",
                     "cracks", "teeth_marks", "dry")


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class NoParams(_Params):
    pass


class ChestParams(_Params):
    indication: str = Field("", max_length=500, description="Clinical indication (free text) for the diagnosis model.")


class TongueParams(_Params):
    description: str = Field("", max_length=500, description="The patient's own description of symptoms.")
    attributes: dict[str, float] = Field(description="The examiner's observations, each 0–1: " + ", ".join(TONGUE_ATTRIBUTES))


@dataclass(frozen=True)
class ModelInput:
    """What a model reads: the item kind, the modalities of an imaging study, and parameters."""

    name: str
    version: str
    item_kind: str                        # imaging_study | lab_panel
    modalities: tuple[str, ...] = ()      # imaging: the series modalities it reads
    min_frames: int = 1                   # imaging: a cine clip needs frames
    panel: str | None = None              # lab panels: the panel it reads
    params: type[_Params] = NoParams
    summary: str = ""


MODELS: dict[str, ModelInput] = {m.name: m for m in (
    ModelInput("chest_xray_diagnosis", "1", "imaging_study", ("CR", "DX"), params=ChestParams,
               summary="Chest radiograph: per-label probabilities and the findings above threshold."),
    ModelInput("chest_xray_report", "1", "imaging_study", ("CR", "DX"),
               summary="Chest radiograph: regions with boxes, a finding sentence each, and a report."),
    ModelInput("echo", "1", "imaging_study", ("US",), min_frames=16,
               summary="Echocardiogram cine clip: ejection fraction and the left-ventricle contour."),
    ModelInput("urinalysis", "1", "lab_panel", panel="urinalysis",
               summary="Urinalysis and renal panel: kidney-task probabilities."),
    ModelInput("tongue", "1", "imaging_study", ("XC", "OT"), params=TongueParams,
               summary="Tongue photograph with observations: syndrome probabilities."),
)}


def model_input(name: str, version: str | None) -> ModelInput:
    """The model asked for (422 naming the known ones, or the versions served)."""
    found = MODELS.get(name)
    if found is None:
        raise Problem(422, "unknown-model", f"Unknown model; known: {', '.join(sorted(MODELS))}.")
    if version is not None and version != found.version:
        raise Problem(422, "unknown-model-version", f"Model {name} is served in version {found.version}.")
    return found


def checked_parameters(model: ModelInput, given: dict[str, Any] | None) -> dict[str, Any]:
    """The parameters as the model takes them (422 naming the fields, never their values)."""
    try:
        params = model.params.model_validate(given or {}).model_dump()
    except ValidationError as exc:
        raise validation_failed(field_errors(exc, "body.parameters"), f"Parameters do not fit model {model.name}.") from None
    if isinstance(params.get("attributes"), dict):
        attrs = params["attributes"]
        errors = [FieldError(f"body.parameters.attributes.{k}", "Unknown attribute.", "unknown") for k in sorted(set(attrs) - set(TONGUE_ATTRIBUTES))]
        errors += [FieldError(f"body.parameters.attributes.{k}", "Required.", "missing") for k in TONGUE_ATTRIBUTES if k not in attrs]
        errors += [FieldError(f"body.parameters.attributes.{k}", "Between 0 and 1.", "out_of_range")
                   for k, v in attrs.items() if k in TONGUE_ATTRIBUTES and not 0.0 <= v <= 1.0]
        if errors:
            raise validation_failed(errors, "Tongue observations: each of the attributes, 0 to 1.")
        params["attributes"] = {k: float(attrs[k]) for k in TONGUE_ATTRIBUTES}
    return params


def wrong_input(detail: str, code: str = "wrong-input-for-model") -> Problem:
    return Problem(422, code, detail)
