"""Generate the JSON schemas kubeconform validates k8s/ against (kept in the repo).

Sources, all offline once fetched through the Go module proxy (`go mod download`):
  kubernetes/   from k8s.io/kubernetes@K8S_VERSION api/openapi-spec/swagger.json, for
                the kinds MedFlow renders (KINDS); refs inlined, like the
                kubernetes-json-schema "-standalone-strict" flavour.
  crds/         from the openAPIV3Schema of each CRD:
                  - Knative Serving: knative.dev/serving@SERVING_VERSION
                    config/core/300-resources/*.yaml (the real CRDs);
                  - Knative Eventing, Knative Kafka, KServe: their modules are not served by
                    the module proxy reachable here, so k8s/schemas/crds-handwritten/*.yaml
                    holds CRD openAPIV3Schemas written from their API reference, covering
                    the fields MedFlow uses (strict: an unknown field is an error). Replace
                    them with the upstream CRDs where those can be fetched (same script).
Objects without `additionalProperties` get `additionalProperties: false` (strict), except
where the schema says x-kubernetes-preserve-unknown-fields.

Usage: python k8s/schemas/generate.py [--check]
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
K8S_MODULE = "k8s.io/kubernetes"
K8S_VERSION = "v1.34.2"
SERVING_MODULE = "knative.dev/serving"
SERVING_VERSION = "v0.51.0"  # Knative Serving 1.x releases are tagged v0.x as Go modules
SERVING_CRDS = ("service.yaml", "domain-mapping.yaml")

# (group, version, kind) of the Kubernetes kinds MedFlow renders or Terraform's charts use.
KINDS = [
    ("", "v1", "Namespace"),
    ("", "v1", "ConfigMap"),
    ("", "v1", "Secret"),
    ("", "v1", "Service"),
    ("", "v1", "ServiceAccount"),
    ("apps", "v1", "Deployment"),
    ("batch", "v1", "Job"),
    ("batch", "v1", "CronJob"),
    ("policy", "v1", "PodDisruptionBudget"),
    ("networking.k8s.io", "v1", "NetworkPolicy"),
    ("networking.k8s.io", "v1", "Ingress"),
    ("autoscaling", "v2", "HorizontalPodAutoscaler"),
]


def module_dir(module: str, version: str) -> Path:
    out = subprocess.run(["go", "mod", "download", "-json", f"{module}@{version}"], check=True,
                         capture_output=True, text=True).stdout
    return Path(json.loads(out)["Dir"])


def strict(schema: Any) -> Any:
    """Recursively close objects that list their properties."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if schema.get("x-kubernetes-int-or-string"):
            kept = {k: v for k, v in schema.items() if k in ("description",)}
            return {**kept, "oneOf": [{"type": "string"}, {"type": "integer"}]}
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        if isinstance(schema.get("type"), str) and schema.get("nullable"):
            schema["type"] = [schema["type"], "null"]
        return schema
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


# ------------------------------------------------------------------ Kubernetes

SPECIAL = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {"oneOf": [{"type": "string"}, {"type": "number"}]},
}


def inline(defs: dict[str, Any], schema: Any, depth: int = 0) -> Any:
    if depth > 40:
        return {}
    if isinstance(schema, dict):
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            if name in SPECIAL:
                return copy.deepcopy(SPECIAL[name])
            return inline(defs, defs[name], depth + 1)
        return {k: inline(defs, v, depth + 1) for k, v in schema.items()}
    if isinstance(schema, list):
        return [inline(defs, v, depth + 1) for v in schema]
    return schema


def kubernetes_schemas() -> dict[str, Any]:
    swagger = json.loads((module_dir(K8S_MODULE, K8S_VERSION) / "api/openapi-spec/swagger.json").read_text())
    defs = swagger["definitions"]
    by_gvk = {}
    for name, d in defs.items():
        for gvk in d.get("x-kubernetes-group-version-kind", []):
            by_gvk[(gvk["group"], gvk["version"], gvk["kind"])] = name
    out = {}
    for group, version, kind in KINDS:
        schema = strict(inline(defs, defs[by_gvk[(group, version, kind)]]))
        api_version = f"{group}/{version}" if group else version
        schema["properties"]["apiVersion"] = {"type": "string", "enum": [api_version]}
        schema["properties"]["kind"] = {"type": "string", "enum": [kind]}
        schema["$schema"] = "http://json-schema.org/draft-07/schema#"
        schema["x-medflow-source"] = f"{K8S_MODULE}@{K8S_VERSION} api/openapi-spec/swagger.json"
        suffix = f"-{group.split('.')[0]}-{version}" if group else f"-{version}"
        out[f"kubernetes/{kind.lower()}{suffix}.json"] = schema
    return out


# ------------------------------------------------------------------ CRDs


def crd_schemas(crd: dict[str, Any], source: str) -> dict[str, Any]:
    out = {}
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    for version in crd["spec"]["versions"]:
        if not version.get("served", True):
            continue
        raw = version.get("schema", {}).get("openAPIV3Schema") or crd["spec"].get("validation", {}).get("openAPIV3Schema")
        schema = strict(copy.deepcopy(raw))
        props = schema.setdefault("properties", {})
        props["apiVersion"] = {"type": "string", "enum": [f"{group}/{version['name']}"]}
        props["kind"] = {"type": "string", "enum": [kind]}
        props["metadata"] = {"type": "object"}
        # The status is written by controllers, never by a manifest.
        props.pop("status", None)
        schema["$schema"] = "http://json-schema.org/draft-07/schema#"
        schema["x-medflow-source"] = source
        out[f"crds/{group}/{kind.lower()}_{version['name']}.json"] = schema
    return out


def all_schemas() -> dict[str, Any]:
    out = kubernetes_schemas()
    serving = module_dir(SERVING_MODULE, SERVING_VERSION) / "config/core/300-resources"
    for name in SERVING_CRDS:
        for crd in yaml.safe_load_all((serving / name).read_text()):
            if crd and crd.get("kind") == "CustomResourceDefinition":
                out.update(crd_schemas(crd, f"{SERVING_MODULE}@{SERVING_VERSION} config/core/300-resources/{name}"))
    for path in sorted((HERE / "crds-handwritten").glob("*.yaml")):
        for crd in yaml.safe_load(path.read_text())["crds"]:
            out.update(crd_schemas(crd, f"hand-written: k8s/schemas/crds-handwritten/{path.name}"))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    files = {HERE / rel: json.dumps(schema, indent=1, sort_keys=True) + "\n" for rel, schema in all_schemas().items()}
    stale = [p for p, text in files.items() if not p.exists() or p.read_text() != text]
    if args.check:
        for p in stale:
            print(f"stale: {p}")
        return 1 if stale else 0
    for p, text in files.items():
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    print(f"wrote {len(files)} schemas ({len(stale)} changed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
