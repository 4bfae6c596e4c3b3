"""Model answers turned into the results a doctor reviews: what each model's v2 response
becomes, and every way a response can fail its schema (so it is never stored)."""

from __future__ import annotations

import copy

import pytest

from medflow.analysis.inputs import panel_json
from medflow.analysis.models import checked_parameters, model_input
from medflow.analysis.results import InvalidModelOutput, structured_result
from medflow.errors import Problem

CXR_LABELS = "atelectasis,cardiomegaly,no_finding"


def v2(model: str, *outputs, **parameters) -> dict:
    return {"model_name": model, "model_version": "1", "outputs": list(outputs),
            "parameters": {"engine": "onnxruntime-cpu", "weights": "demo", "not_for_clinical_use": True,
                           "queue_ms": 1.5, "infer_ms": 3.0, **parameters}}


def tensor(name: str, shape: list[int], datatype: str, data: list, **parameters) -> dict:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data, "parameters": parameters}


CXR = v2("chest_xray_diagnosis", tensor("probabilities", [1, 3], "FP32", [0.7, 0.2, 0.9], labels=CXR_LABELS),
         tensor("findings", [1], "BYTES", ["atelectasis,no_finding"]))
REPORT = v2("chest_xray_report", tensor("boxes", [1, 2, 4], "FP32", [0.1, 0.1, 0.5, 0.9, 0.5, 0.1, 0.9, 0.9],
                                        regions="right_lung,left_lung"),
            tensor("region_findings", [1, 2], "BYTES", ["Right lung clear.", "Left lung clear."]),
            tensor("confidence", [1, 2], "FP32", [0.8, 0.6]), tensor("report", [1], "BYTES", ["Both lungs clear."]))
SCORED_REPORT = v2("chest_xray_report", *REPORT["outputs"], tensor("region_scores", [1, 2], "FP32", [0.97, 0.4]))
ECHO = v2("echo", tensor("ejection_fraction", [1, 1], "FP32", [57.25]),
          tensor("contour", [1, 3, 2], "FP32", [0.4, 0.2, 0.6, 0.2, 0.5, 0.7]))


def test_chest_diagnosis_keeps_every_probability_and_lists_the_findings_above_threshold():
    result = structured_result("chest_xray_diagnosis", "1", CXR, {})
    assert result["probabilities"] == {"atelectasis": 0.7, "cardiomegaly": 0.2, "no_finding": 0.9}
    assert result["findings"] == [{"key": "f1", "kind": "label", "label": "atelectasis", "probability": 0.7}]
    assert (result["engine"], result["weights"], result["not_for_clinical_use"]) == ("onnxruntime-cpu", "demo", True)


def test_report_regions_carry_box_sentence_and_confidence():
    result = structured_result("chest_xray_report", "1", REPORT, {})
    assert result["report"] == "Both lungs clear."
    assert result["findings"][1] == {"key": "f2", "kind": "region", "label": "left_lung", "text": "Left lung clear.",
                                     "confidence": 0.6, "box": [0.5, 0.1, 0.9, 0.9]}


def test_report_regions_carry_the_detectors_score_when_the_model_gives_one():
    findings = structured_result("chest_xray_report", "1", SCORED_REPORT, {})["findings"]
    assert [f["detection_score"] for f in findings] == [0.97, 0.4]
    assert findings[0]["box"] == [0.1, 0.1, 0.5, 0.9]


def test_echo_gives_the_ejection_fraction_and_the_contour():
    result = structured_result("echo", "1", ECHO, {})
    assert result["ejection_fraction"] == 57.25
    assert result["findings"][1]["contour"] == [[0.4, 0.2], [0.6, 0.2], [0.5, 0.7]]


def _broken(response: dict, change) -> dict:
    copied = copy.deepcopy(response)
    change(copied)
    return copied


@pytest.mark.parametrize("model,response,why", [
    ("chest_xray_diagnosis", _broken(CXR, lambda r: r["outputs"].pop(0)), "missing"),
    ("chest_xray_diagnosis", _broken(CXR, lambda r: r["outputs"][0].update(data=[1.7, 0.2, 0.9])), "schema"),
    ("chest_xray_diagnosis", _broken(CXR, lambda r: r["outputs"][0].update(data=[float("nan"), 0.2, 0.9])), "non-finite"),
    ("chest_xray_diagnosis", _broken(CXR, lambda r: r["outputs"][0].update(shape=[1, 4])), "holds"),
    ("chest_xray_diagnosis", _broken(CXR, lambda r: r["outputs"][0]["parameters"].update(labels="a,b")), "labels"),
    ("chest_xray_diagnosis", _broken(CXR, lambda r: r.update(model_name="echo")), "another model"),
    ("chest_xray_report", _broken(REPORT, lambda r: r["outputs"][0].update(data=[0.9, 0.1, 0.5, 0.9] * 2)), "schema"),
    ("chest_xray_report", _broken(REPORT, lambda r: r["outputs"][2].update(data=[0.8, -0.1])), "schema"),
    ("chest_xray_report", _broken(SCORED_REPORT, lambda r: r["outputs"][4].update(data=[0.8, 1.3])), "schema"),
    ("chest_xray_report", _broken(SCORED_REPORT, lambda r: r["outputs"][4].update(shape=[1, 3])), "shape"),
    ("echo", _broken(ECHO, lambda r: r["outputs"][0].update(data=[140.0])), "schema"),
    ("echo", _broken(ECHO, lambda r: r["outputs"][1].update(data=[0.4, 0.2, 0.6, 0.2, 1.5, 0.7])), "schema"),
    ("echo", {"outputs": "nope"}, "no outputs"),
    ("echo", ["not", "an", "object"], "not a JSON object"),
])
def test_an_answer_that_fails_its_schema_is_refused(model, response, why):
    with pytest.raises(InvalidModelOutput, match=why):
        structured_result(model, "1", response, {})


def test_tongue_syndrome_must_be_one_of_its_labels():
    ok = v2("tongue", tensor("probabilities", [1, 2], "FP32", [0.3, 0.7], labels="heat,cold"),
            tensor("syndrome", [1], "BYTES", ["cold"]))
    attrs = {"red_body": 0.1}
    assert structured_result("tongue", "1", ok, {"attributes": attrs})["attributes"] == attrs
    bad = _broken(ok, lambda r: r["outputs"][1].update(data=["damp"]))
    with pytest.raises(InvalidModelOutput, match="not one of the labels"):
        structured_result("tongue", "1", bad, {})


def test_tongue_parameters_need_every_observation_between_0_and_1():
    model = model_input("tongue", None)
    with pytest.raises(Problem) as refused:
        checked_parameters(model, {"attributes": {"red_body": 1.5, "sparkly": 0.2}})
    locs = {e.loc for e in refused.value.errors}
    assert {"body.parameters.attributes.red_body", "body.parameters.attributes.sparkly",
            "body.parameters.attributes.dry"} <= locs
    with pytest.raises(Problem):
        model_input("echo", "2")


def test_a_lab_panel_is_mapped_to_the_models_analytes_by_local_code_or_loinc():
    content = {"panel": "urinalysis", "analytes": [
        {"code": "2160-0", "name": "Creatinine", "value": 120.0, "unit": "umol/L"},
        {"code": "ph", "name": "pH", "value": 6.5}, {"code": "colour", "name": "Colour", "value": "amber"}]}
    assert panel_json(content, 64.2) == {"serum_creatinine": {"value": 120.0, "unit": "umol/L"},
                                         "ph": {"value": 6.5}, "age": {"value": 64.2, "unit": "years"}}
