"""What each kind of case item holds, validated before it is stored."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from medflow.errors import field_errors, validation_failed


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReportContent(_Strict):
    text: str = Field(min_length=1, max_length=100_000)
    conclusion: str | None = Field(None, max_length=10_000)


class Analyte(_Strict):
    code: str = Field(pattern=r"^[A-Za-z0-9._-]{1,32}$", description="e.g. LOINC code or local code")
    name: str = Field(min_length=1, max_length=100)
    value: float | str
    unit: str | None = Field(None, max_length=32)
    reference_low: float | None = None
    reference_high: float | None = None
    flag: Literal["low", "normal", "high", "abnormal"] | None = None

    @model_validator(mode="after")
    def _range_in_order(self) -> "Analyte":
        if self.reference_low is not None and self.reference_high is not None and self.reference_low > self.reference_high:
            raise ValueError("reference_low is above reference_high")
        return self


class LabPanelContent(_Strict):
    panel: str = Field(min_length=1, max_length=64, description="e.g. urinalysis")
    specimen: str | None = Field(None, max_length=64)
    analytes: list[Analyte] = Field(min_length=1, max_length=200)


class VitalsContent(_Strict):
    heart_rate_bpm: float | None = Field(None, ge=0, le=400)
    systolic_mmhg: float | None = Field(None, ge=0, le=400)
    diastolic_mmhg: float | None = Field(None, ge=0, le=300)
    temperature_c: float | None = Field(None, ge=20, le=46)
    respiratory_rate: float | None = Field(None, ge=0, le=120)
    spo2_percent: float | None = Field(None, ge=0, le=100)
    weight_kg: float | None = Field(None, ge=0, le=700)
    height_cm: float | None = Field(None, ge=0, le=300)


class ImagingStudyContent(_Strict):
    study_instance_uid: str = Field(pattern=r"^[0-9]+(\.[0-9]+)*$", max_length=64)
    description: str | None = Field(None, max_length=200)


CONTENT = {"report": ReportContent, "lab_panel": LabPanelContent, "vitals": VitalsContent,
           "imaging_study": ImagingStudyContent}


def validated_content(kind: str, content: dict[str, Any]) -> dict[str, Any]:
    """The content checked against its kind (422 naming the fields, never their values)."""
    try:
        return CONTENT[kind].model_validate(content).model_dump(exclude_none=True)
    except ValidationError as exc:
        raise validation_failed(field_errors(exc, "body.content"), f"The content is not a valid {kind}.") from None
