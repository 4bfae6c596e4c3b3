"""infra/terraform: formatted, and every environment root (dev and prod, each in two
stages) initialises offline against the providers built by scripts/deploy-tools.sh
(`terraform init -backend=false -plugin-dir=…`) and validates. The Kafka module creates
the catalogue's topics and a dead-letter topic per consumer."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml

from manifest_support import REPO, missing, run, tool, tools_dir

TF = REPO / "infra" / "terraform"
ROOTS = sorted(p.parent.relative_to(TF) for p in TF.glob("environments/*/*/providers.tf"))
CATALOGUE = yaml.safe_load((REPO / "events" / "catalogue.yaml").read_text())


@pytest.fixture(scope="session")
def terraform() -> Path:
    return tool("terraform")


@pytest.fixture(scope="session")
def plugin_dir() -> Path:
    plugins = tools_dir() / "plugins"
    for name in ("kubernetes", "helm"):
        if not list(plugins.glob(f"registry.terraform.io/hashicorp/{name}/*/linux_amd64/terraform-provider-{name}_v*")):
            missing(f"terraform provider {name} (under {plugins})")
    return plugins


@pytest.fixture(scope="session")
def tf_copy(tmp_path_factory) -> Path:
    """A copy of infra/terraform, so init's .terraform/ and lock files stay out of the repo."""
    dest = tmp_path_factory.mktemp("terraform") / "terraform"
    shutil.copytree(TF, dest, ignore=shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "*.tfstate*"))
    return dest


def tf_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(TF_IN_AUTOMATION="1", TF_INPUT="0", CHECKPOINT_DISABLE="1")
    env.pop("TF_CLI_CONFIG_FILE", None)
    return env


def test_there_are_dev_and_prod_roots_in_two_stages():
    assert {str(r) for r in ROOTS} >= {"environments/dev/1-operators", "environments/dev/2-platform",
                                       "environments/prod/1-operators", "environments/prod/2-platform"}


def test_terraform_is_formatted(terraform):
    done = run([terraform, "fmt", "-check", "-recursive", "-diff", TF], env=tf_env())
    assert done.returncode == 0, f"run `terraform fmt -recursive infra/terraform`:\n{done.stdout}{done.stderr}"


@pytest.mark.parametrize("root", ROOTS, ids=str)
def test_environment_validates(terraform, plugin_dir, tf_copy, root):
    where = tf_copy / root
    init = run([terraform, "init", "-backend=false", "-input=false", f"-plugin-dir={plugin_dir}"], cwd=where,
               env=tf_env(), timeout=600)
    assert init.returncode == 0, f"terraform init in {root} failed:\n{init.stdout}{init.stderr}"
    done = run([terraform, "validate", "-json"], cwd=where, env=tf_env(), timeout=600)
    report = json.loads(done.stdout)
    problems = [f"{d['severity']}: {d['summary']}: {d.get('detail', '')} ({d.get('range', {}).get('filename', '')})"
                for d in report.get("diagnostics", []) if d["severity"] == "error"]
    assert report["valid"] and not problems, "\n".join(problems)


def test_every_variable_and_output_is_documented():
    for path in TF.rglob("*.tf"):
        text = path.read_text()
        for kind, name, body in re.findall(r'^(variable|output) "([^"]+)" \{(.*?)^\}', text, re.S | re.M):
            assert re.search(r"^\s+description\s*=", body, re.M), f"{path.relative_to(REPO)}: {kind} {name} has no description"


def test_kafka_topics_follow_the_catalogue():
    variables = (TF / "modules" / "kafka" / "variables.tf").read_text()
    topics = {e["topic"] for e in CATALOGUE["events"].values()} | set(CATALOGUE.get("topics") or {})
    for topic in topics:
        assert f'"{topic}"' in variables, f"topic {topic} of events/catalogue.yaml is not in modules/kafka topics"
    consumers_default = re.search(r'variable "consumers" \{.*?default\s*=\s*\[(.*?)\]', variables, re.S).group(1)
    for consumer in CATALOGUE.get("consumers") or {}:
        assert f'"{consumer}"' in consumers_default, f"consumer {consumer} has no dead-letter topic in modules/kafka"
    assert CATALOGUE["defaults"]["dead_letter_topic"] == "medflow.deadletter.{group}"
    assert '"medflow.deadletter.${consumer}"' in (TF / "modules" / "kafka" / "main.tf").read_text()


def test_custom_resources_are_not_planned_with_their_crds():
    """Stage 1 roots install the operators (CRDs); custom resources only in stage 2."""
    for root in ROOTS:
        text = "".join(p.read_text() for p in (TF / root).glob("*.tf"))
        modules = set(re.findall(r'source\s*=\s*"\.\./\.\./\.\./modules/([\w-]+)"', text))
        if root.name.startswith("1-"):
            assert modules <= {"operators", "gpu-nodes"}, (root, modules)
        else:
            assert "operators" not in modules, root


def test_validation_catches_an_unknown_argument(terraform, plugin_dir, tmp_path):
    """validate really checks the modules against the providers' schemas."""
    dest = tmp_path / "terraform"
    shutil.copytree(TF, dest, ignore=shutil.ignore_patterns(".terraform", ".terraform.lock.hcl"))
    redis = dest / "modules" / "redis" / "main.tf"
    redis.write_text(redis.read_text().replace('resource "helm_release" "redis" {',
                                               'resource "helm_release" "redis" {\n  no_such_argument = 1', 1))
    where = dest / "environments" / "dev" / "2-platform"
    init = run([terraform, "init", "-backend=false", "-input=false", f"-plugin-dir={plugin_dir}"], cwd=where, env=tf_env())
    assert init.returncode == 0, init.stderr
    report = json.loads(run([terraform, "validate", "-json"], cwd=where, env=tf_env()).stdout)
    assert not report["valid"]
    assert any("no_such_argument" in d.get("detail", "") for d in report["diagnostics"])


def test_object_store_creates_every_bucket_the_code_uses():
    from medflow.storage.ports import BUCKETS
    main_tf = (TF / "modules" / "object-store" / "main.tf").read_text()
    listed = re.search(r'for b in \[(.*?)\] : "\$\{var\.bucket_prefix\}-\$\{b\}"', main_tf).group(1)
    for bucket in BUCKETS:
        assert f'"{bucket}"' in listed, f"bucket {bucket} (medflow/storage/ports.py) is not created by modules/object-store"
