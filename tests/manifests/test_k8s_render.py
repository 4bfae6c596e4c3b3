"""Every overlay renders with kustomize and every rendered object validates against the
Kubernetes and CRD JSON schemas kept in k8s/schemas (kubeconform, strict, no missing
schema allowed)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from manifest_support import K8S, OVERLAYS, render_text, run
from manifest_support import kubeconform, kustomize  # noqa: F401  (fixtures)

SCHEMA_LOCATIONS = [
    str(K8S / "schemas" / "kubernetes" / "{{.ResourceKind}}{{.KindSuffix}}.json"),
    str(K8S / "schemas" / "crds" / "{{.Group}}" / "{{.ResourceKind}}_{{.ResourceAPIVersion}}.json"),
]


def test_there_are_overlays_dev_prod_and_cpu():
    assert {"dev", "prod", "cpu"} <= set(OVERLAYS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders(kustomize, overlay):
    text = render_text(kustomize, overlay)
    assert "kind: Service" in text


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_validates_against_schemas(kustomize, kubeconform, overlay, tmp_path):
    path = tmp_path / f"{overlay}.yaml"
    path.write_text(render_text(kustomize, overlay))
    cmd = [kubeconform, "-strict", "-summary", "-output", "json"]
    for location in SCHEMA_LOCATIONS:
        cmd += ["-schema-location", location]
    done = run([*cmd, path])
    report = json.loads(done.stdout or "{}")
    problems = [f"{r['kind']} {r['name']}: {r['status']}: {r.get('msg', '')}" for r in report.get("resources", [])
                if r["status"] != "statusValid"]
    assert done.returncode == 0 and not problems, "\n".join(problems) or done.stderr
    summary = report["summary"]
    assert summary["valid"] > 40 and summary["skipped"] == 0, summary


def test_validation_catches_a_misspelt_field(kustomize, kubeconform, tmp_path):
    """The schemas are strict: a typo in a Knative Service or an InferenceService fails."""
    text = render_text(kustomize, "dev")
    bad = text.replace("containerConcurrency:", "containerConcurency:", 1).replace(
        "canaryTrafficPercent:", "canaryTraficPercent:", 1)
    path = tmp_path / "bad.yaml"
    path.write_text(bad)
    cmd = [kubeconform, "-strict", "-summary"]
    for location in SCHEMA_LOCATIONS:
        cmd += ["-schema-location", location]
    done = run([*cmd, path])
    assert done.returncode != 0
    assert "Invalid: 2" in done.stdout + done.stderr, done.stdout


def test_generated_manifests_are_current():
    done = subprocess.run([sys.executable, str(K8S / "generate.py"), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, (
        "k8s/base is out of date with k8s/platform.yaml, functions/ or events/catalogue.yaml; "
        f"run `python k8s/generate.py`:\n{done.stdout}{done.stderr}")


def test_every_schema_names_its_source():
    schemas = sorted((K8S / "schemas").rglob("*.json"))
    assert len(schemas) >= 15
    for path in schemas:
        source = json.loads(path.read_text())["x-medflow-source"]
        assert source.startswith(("k8s.io/kubernetes@", "knative.dev/serving@", "hand-written:")), path


def test_release_jobs_validate_against_schemas(kubeconform):
    """k8s/jobs/ (created once per release, outside the overlays) validates too."""
    jobs = sorted((K8S / "jobs").glob("*.yaml"))
    assert jobs
    cmd = [kubeconform, "-strict", "-summary"]
    for location in SCHEMA_LOCATIONS:
        cmd += ["-schema-location", location]
    done = run([*cmd, *jobs])
    assert done.returncode == 0, done.stdout + done.stderr
