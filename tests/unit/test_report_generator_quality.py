"""The shipped report generator (ONNX Runtime, demo weights) finds each anatomical region on
generated radiographs it never saw and writes the sentence that region's state calls for."""

from __future__ import annotations

import importlib
import json

import numpy as np
import onnxruntime as ort
import pytest

from medflow.inference.catalog import PACKAGE, _mount, model_folder, model_module
from medflow.inference.text import Tokenizer

N = 16


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lo, hi = np.maximum(a[..., :2], b[..., :2]), np.minimum(a[..., 2:], b[..., 2:])
    inter = np.clip(hi - lo, 0, None).prod(-1)
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


@pytest.fixture(scope="module")
def answers():
    _mount()
    synthetic = importlib.import_module(f"{PACKAGE}.common.synthetic")
    rng = np.random.default_rng(2026)
    abnormal = rng.random((N, 6)) < 0.5
    drawn = [synthetic.chest_xray_regions(rng, a, 512) for a in abnormal]
    images = np.stack([d[0] for d in drawn])[:, None]
    session = ort.InferenceSession(str(model_folder("chest_xray_report") / "model.onnx"), providers=["CPUExecutionProvider"])
    boxes, words, _, scores = session.run(None, {"image": images})
    return {"boxes": boxes, "true_boxes": np.stack([d[1] for d in drawn]), "words": words, "scores": scores,
            "abnormal": abnormal}


def test_every_region_is_found_where_it_is(answers):
    iou = _iou(answers["boxes"], answers["true_boxes"])                   # [N, 6]
    assert (iou >= 0.5).mean() >= 0.95, iou.round(2)
    assert iou.mean() >= 0.8
    assert (answers["scores"] > 0.5).mean() >= 0.95                       # and says it is sure


def test_abnormal_and_normal_regions_get_their_sentences(answers):
    train, sentences = model_module("chest_xray_report", "train"), model_module("chest_xray_report", "sentences")
    tok = Tokenizer(json.loads((model_folder("chest_xray_report") / "vocab.json").read_text())["vocab"], 12)
    expected = np.array([[train.sentence_ids(tok, (sentences.ABNORMAL if a else sentences.NORMAL)[r])
                          for r, a in zip(train.REGIONS, row)] for row in answers["abnormal"]])
    exact = (answers["words"] == expected).all(-1)                         # [N, 6]
    assert exact[answers["abnormal"]].mean() >= 0.9                       # findings are not missed
    assert exact[~answers["abnormal"]].mean() >= 0.9                      # nor invented
