"""``medflow models``: the run command writes a demo request per model and starts the model
server with all five; unknown model names stop the server before it starts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from medflow.inference.catalog import MODELS, available

BIN = Path(sys.executable).parent


def test_all_five_models_are_shipped_with_predictor_demo_weights_and_card():
    assert sorted(available()) == sorted(MODELS)
    for name in MODELS:
        folder = Path(__file__).resolve().parents[2] / "kserve" / name
        card = (folder / "MODEL_CARD.md").read_text()
        assert "not for clinical use" in card.lower()
        for section in ("Inputs", "Outputs", "Preprocessing", "Intended use", "Limits"):
            assert section in card, (name, section)


def test_demo_requests_are_written_for_every_model(tmp_path):
    out = subprocess.run([str(BIN / "medflow"), "models", "demo-requests", str(tmp_path), "--port", "8123"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    for name in MODELS:
        body = json.loads((tmp_path / f"{name}.json").read_text())
        assert body["inputs"] and all({"name", "datatype", "shape", "data"} <= set(i) for i in body["inputs"])
        assert f"localhost:8123/v2/models/{name}/infer" in out


def test_unknown_model_names_are_refused():
    r = subprocess.run([str(BIN / "medflow"), "models", "serve", "--models", "urinalysis,xray9000"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "xray9000" in r.stderr
