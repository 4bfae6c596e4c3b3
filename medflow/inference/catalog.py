"""The five diagnostic models. Each lives in ``kserve/<model>/`` (PyTorch definition,
training on generated data, ONNX export, predictor, model card, shipped demo weights).

The repository's ``kserve/`` folder cannot be imported as ``kserve`` (that is KServe's own
package), so it is mounted as the package ``medflow_kserve``: ``medflow_kserve.urinalysis.predictor``.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

KSERVE_DIR = Path(__file__).resolve().parents[2] / "kserve"
PACKAGE = "medflow_kserve"

MODELS = ("chest_xray_diagnosis", "chest_xray_report", "echo", "urinalysis", "tongue")


def _mount() -> None:
    if PACKAGE in sys.modules:
        return
    spec = importlib.machinery.ModuleSpec(PACKAGE, None, is_package=True)
    module = importlib.util.module_from_spec(spec)
    module.__path__ = [str(KSERVE_DIR)]
    sys.modules[PACKAGE] = module


def model_module(model: str, part: str) -> ModuleType:
    """``kserve/<model>/<part>.py`` as a module (``part``: predictor, model, train, export, ...)."""
    if model not in MODELS:
        raise KeyError(f"unknown model {model!r}; known: {', '.join(MODELS)}")
    _mount()
    return importlib.import_module(f"{PACKAGE}.{model}.{part}")


def available() -> list[str]:
    """The models whose predictor and demo weights are in the checkout."""
    return [m for m in MODELS if (KSERVE_DIR / m / "predictor.py").exists() and (KSERVE_DIR / m / "model.onnx").exists()]


def model_folder(model: str) -> Path:
    return KSERVE_DIR / model
