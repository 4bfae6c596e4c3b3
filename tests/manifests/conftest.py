"""Fixtures of the manifest tests (helpers in manifest_support.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from manifest_support import OVERLAYS, render_text, tool


@pytest.fixture(scope="session")
def kustomize() -> Path:
    return tool("kustomize")


@pytest.fixture(scope="session")
def kubeconform() -> Path:
    return tool("kubeconform")


@pytest.fixture(scope="session")
def rendered(kustomize: Path) -> dict[str, list[dict[str, Any]]]:
    """Every overlay rendered by kustomize: overlay -> its objects."""
    return {o: [d for d in yaml.safe_load_all(render_text(kustomize, o)) if d] for o in OVERLAYS}


