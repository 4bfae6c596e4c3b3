"""KServe predictor (v2) of the urinalysis model.

Request: ``panel`` BYTES [n]: one lab panel JSON per case (see ``panel.py``: analyte ->
{value, unit}; every analyte required, units converted, implausible values refused).
Response: ``probabilities`` FP32 [n, 4] (tasks in the output's ``labels`` parameter) and
``findings`` BYTES [n]: the tasks at or above 0.5, comma-separated.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from kserve import InferOutput
from kserve.errors import InvalidInput

from medflow.inference.predictor import DiagnosticPredictor, ModelSpec, TensorSpec, as_text

from .panel import TASKS, PanelError, log1p_scale, parse_panel

HERE = Path(__file__).resolve().parent


class Predictor(DiagnosticPredictor):
    spec = ModelSpec(
        name="urinalysis", version="1",
        inputs=(TensorSpec("panel", "BYTES", (-1,), "lab panel JSON per case"),),
        outputs=(TensorSpec("probabilities", "FP32", (-1, len(TASKS))), TensorSpec("findings", "BYTES", (-1,))),
        demo_folder=HERE, max_batch=64,
        max_wait_ms=0.0,  # the engine takes microseconds: waiting costs more than it saves (bench/inference.py);
                          # requests queued while it runs are still batched
    )

    def setup(self, folder: Path) -> None:
        norm = json.loads((folder / "normalisation.json").read_text())
        self.names, self.skewed = norm["analytes"], norm["log1p"]
        self.mean = np.asarray(norm["mean"], np.float32)
        self.std = np.asarray(norm["std"], np.float32)
        self.tasks = norm.get("tasks", list(TASKS))

    def prepare(self, tensors):
        rows = []
        for i, item in enumerate(tensors["panel"]):
            try:
                rows.append(parse_panel(json.loads(as_text(item, f"panel[{i}]"))))
            except json.JSONDecodeError:
                raise InvalidInput(f"panel[{i}]: not valid JSON") from None
            except PanelError as exc:
                raise InvalidInput(f"panel[{i}]: {exc}") from None
        values = log1p_scale(np.stack(rows), self.names, self.skewed)
        return {"features": ((values - self.mean) / self.std).astype(np.float32)}

    def respond(self, outputs, tensors):
        probs = outputs["probabilities"].astype(np.float32)
        findings = [",".join(t for t, p in zip(self.tasks, row) if p >= 0.5) for row in probs]
        return [InferOutput("probabilities", list(probs.shape), "FP32", probs,
                            parameters={"labels": ",".join(self.tasks)}),
                InferOutput("findings", [len(findings)], "BYTES", findings)]
