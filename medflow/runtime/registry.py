"""Finding the functions: every ``functions/<name>/main.py`` declares one ``spec``."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from medflow.runtime.spec import EventFunction, HttpFunction

FUNCTIONS_DIR = Path(os.environ.get("MEDFLOW_FUNCTIONS_DIR", Path(__file__).resolve().parents[2] / "functions"))


def function_sources(root: Path = FUNCTIONS_DIR) -> dict[str, Path]:
    return {p.parent.name: p for p in sorted(root.glob("*/main.py"))}


def load_module(name: str, source: Path) -> ModuleType:
    module_name = f"medflow_functions.{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, source)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def load_specs(root: Path = FUNCTIONS_DIR) -> list[HttpFunction | EventFunction]:
    """The declaration of every function, checked: the folder, the spec name and the
    functions-framework target all carry the same name."""
    specs = []
    for name, source in function_sources(root).items():
        module = load_module(name, source)
        spec = getattr(module, "spec", None)
        if not isinstance(spec, (HttpFunction, EventFunction)):
            raise RuntimeError(f"functions/{name}/main.py declares no `spec`")
        if spec.name != name or not callable(getattr(module, name, None)):
            raise RuntimeError(f"functions/{name}/main.py: spec name and target must both be {name!r}")
        specs.append(spec)
    return specs
