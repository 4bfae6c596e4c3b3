"""Helpers and fixtures of the manifest tests: the deployment tools and the rendered overlays.

No conftest.py here on purpose: other suites import their conftest by module name
(`from conftest import …`), and a second conftest.py would shadow theirs. The test modules
import the fixtures below by name.

The tools (kustomize, kubeconform, terraform and its providers) are built from the Go
module proxy by ``scripts/deploy-tools.sh`` into ``~/.cache/medflow/deploy-tools`` (the
test command runs it). Without them the tests that need them are skipped on a
developer's machine, but fail when ``MEDFLOW_REQUIRE_REAL=1`` (the test command and CI).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").exists())


def tools_dir() -> Path:
    explicit = os.environ.get("MEDFLOW_DEPLOY_TOOLS")
    if explicit:
        return Path(explicit)
    cache = Path(os.environ.get("MEDFLOW_CACHE_DIR") or Path.home() / ".cache" / "medflow")
    return cache / "deploy-tools"


def missing(what: str) -> None:
    message = f"{what} is missing: run `bash scripts/deploy-tools.sh` (builds the tools into {tools_dir()})"
    if os.environ.get("MEDFLOW_REQUIRE_REAL") == "1":
        pytest.fail(message)
    pytest.skip(message)


def tool(name: str) -> Path:
    path = tools_dir() / "bin" / name
    if not os.access(path, os.X_OK):
        missing(f"{name} ({path})")
    return path


def run(cmd: list[str | Path], cwd: Path = REPO, env: dict[str, str] | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


_RENDERED: dict[str, str] = {}


def render_text(kustomize: Path, overlay: str) -> str:
    if overlay not in _RENDERED:
        done = run([kustomize, "build", K8S / "overlays" / overlay])
        assert done.returncode == 0, f"kustomize build k8s/overlays/{overlay} failed:\n{done.stderr}"
        _RENDERED[overlay] = done.stdout
    return _RENDERED[overlay]


def objects(docs: list[dict[str, Any]], kind: str, api_group: str | None = None) -> list[dict[str, Any]]:
    out = []
    for d in docs:
        group = d["apiVersion"].rsplit("/", 1)[0] if "/" in d["apiVersion"] else ""
        if d["kind"] == kind and (api_group is None or group == api_group):
            out.append(d)
    return out


# ------------------------------------------------------------------ fixtures


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


