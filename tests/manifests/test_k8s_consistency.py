"""The manifests agree with the code: every function folder has its Knative Service, every
consumer of events/catalogue.yaml its Trigger (type filter, delivery and dead-letter
topic as the catalogue says), every model its InferenceService, and every environment
variable a manifest sets is a setting medflow/config.py reads.

Data-driven: a function, consumer or model added on another branch fails here with its
name until its manifest exists (add it to k8s/platform.yaml, run `python k8s/generate.py`).
"""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest
import yaml

from manifest_support import K8S, OVERLAYS, REPO, objects
from manifest_support import kustomize, rendered  # noqa: F401  (fixtures)

CATALOGUE = yaml.safe_load((REPO / "events" / "catalogue.yaml").read_text())
PLATFORM = yaml.safe_load((K8S / "platform.yaml").read_text())
FUNCTIONS = sorted(p.parent.name for p in (REPO / "functions").glob("*/main.py"))
# kserve/<model>/ folders; shared code next to them (kserve/common/, kserve/server/…) is not a model.
NOT_MODELS = {"common", "shared", "server", "runtime", "utils", "tests", "lib"}
MODELS = sorted(p.name for p in (REPO / "kserve").glob("*/")
                if p.is_dir() and not p.name.startswith(("_", ".")) and p.name not in NOT_MODELS)


def dns(name: str) -> str:
    return name.replace("_", "-")


def settings_env_names() -> set[str]:
    from medflow.config import Settings
    prefix = Settings.model_config["env_prefix"]
    return {f"{prefix}{name}".upper() for name in Settings.model_fields}


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Containers of any workload kind MedFlow renders."""
    spec = doc.get("spec", {})
    if doc["kind"] == "Service" and doc["apiVersion"].startswith("serving.knative.dev"):
        return spec["template"]["spec"]["containers"]
    if doc["kind"] in ("Deployment", "Job"):
        return spec["template"]["spec"]["containers"]
    if doc["kind"] == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    if doc["kind"] == "ServingRuntime":
        return spec["containers"]
    if doc["kind"] == "InferenceService":
        predictor = spec["predictor"]
        return [predictor["model"], *predictor.get("containers", [])] if "model" in predictor else predictor.get("containers", [])
    return []


def is_event_function(name: str) -> bool:
    return re.search(r"\bEventFunction\(", (REPO / "functions" / name / "main.py").read_text()) is not None


@pytest.fixture(scope="session", params=OVERLAYS)
def docs(request, rendered):
    return rendered[request.param]


# ------------------------------------------------------------------ functions


def test_functions_are_discovered():
    assert "directory" in FUNCTIONS and "audit_sink" in FUNCTIONS


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_function_folder_has_an_autoscaling_entry(function):
    entry = PLATFORM["functions"].get(function)
    assert entry, (f"functions/{function}/ has no entry in k8s/platform.yaml `functions:`: add one "
                   "(profile and why), then run `python k8s/generate.py`")
    assert entry["profile"] in PLATFORM["profiles"]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_function_folder_has_its_knative_service(docs, function):
    services = {s["metadata"]["name"]: s for s in objects(docs, "Service", "serving.knative.dev")}
    assert dns(function) in services, (f"functions/{function}/ has no Knative Service {dns(function)!r}: "
                                       "add it to k8s/platform.yaml and run `python k8s/generate.py`")
    template = services[dns(function)]["spec"]["template"]
    (container,) = template["spec"]["containers"]
    args = container["args"]
    assert args[args.index("--target") + 1] == function
    assert args[args.index("--source") + 1] == f"functions/{function}/main.py"
    annotations = template["metadata"]["annotations"]
    for key in ("min-scale", "max-scale", "target"):
        assert f"autoscaling.knative.dev/{key}" in annotations
    assert int(annotations["autoscaling.knative.dev/min-scale"]) <= int(annotations["autoscaling.knative.dev/max-scale"])
    assert "containerConcurrency" in template["spec"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert container["securityContext"]["runAsNonRoot"] is True


def test_every_knative_service_is_a_function_folder(docs):
    names = {s["metadata"]["name"] for s in objects(docs, "Service", "serving.knative.dev")}
    assert names == {dns(f) for f in FUNCTIONS}


def test_hot_read_paths_keep_a_warm_minimum_and_rare_ones_scale_to_zero(rendered):
    prod = {s["metadata"]["name"]: s["spec"]["template"]["metadata"]["annotations"]
            for s in objects(rendered["prod"], "Service", "serving.knative.dev")}
    for hot in ("directory", "announcements", "case-search", "auth"):
        assert int(prod[hot]["autoscaling.knative.dev/min-scale"]) >= 1, hot
    for rare in ("accounts", "audit-sink"):
        assert prod[rare]["autoscaling.knative.dev/min-scale"] == "0", rare
    dev = objects(rendered["dev"], "Service", "serving.knative.dev")
    assert {s["spec"]["template"]["metadata"]["annotations"]["autoscaling.knative.dev/min-scale"] for s in dev} == {"0"}


def test_no_function_timeout_exceeds_what_knative_accepts(docs):
    """Knative rejects a Service whose timeoutSeconds is above max-revision-timeout-seconds,
    which infra/terraform/modules/knative sets (Knative's own default is 600)."""
    variables = (REPO / "infra" / "terraform" / "modules" / "knative" / "variables.tf").read_text()
    limit = int(re.search(r'variable "max_revision_timeout_seconds" \{.*?default\s*=\s*(\d+)', variables, re.S).group(1))
    assert '"max-revision-timeout-seconds" = tostring(var.max_revision_timeout_seconds)' in (
        REPO / "infra" / "terraform" / "modules" / "knative" / "main.tf").read_text()
    for service in objects(docs, "Service", "serving.knative.dev"):
        timeout = service["spec"]["template"]["spec"]["timeoutSeconds"]
        assert timeout <= limit, f"{service['metadata']['name']}: timeoutSeconds {timeout} > Knative's maximum {limit}"


def test_every_http_function_is_routed_on_the_one_origin(docs):
    paths = {}
    hosts = set()
    for ingress in objects(docs, "Ingress", "networking.k8s.io"):
        for rule in ingress["spec"]["rules"]:
            hosts.add(rule["host"])
            for path in rule["http"]["paths"]:
                paths[path["backend"]["service"]["name"]] = path["path"]
        assert ingress["spec"]["tls"], ingress["metadata"]["name"]
    assert len(hosts) == 1
    http = [f for f in FUNCTIONS if not is_event_function(f)]
    for function in http:
        assert paths.get(dns(function), "").startswith(f"/api/{function}("), f"no /api/{function}/ route"
    for function in set(FUNCTIONS) - set(http):
        assert dns(function) not in paths, f"CloudEvent function {function} must not be routed publicly"


def test_long_requests_are_not_cut_by_the_ingress(docs):
    """A routed function with its own timeout_s (uploads, streamed answers such as the
    analyses progress stream) is not ended by ingress-nginx's 60 s read time-out first."""
    ingresses = {i["metadata"]["labels"]["medflow.org/function"]: i["metadata"]["annotations"]
                 for i in objects(docs, "Ingress", "networking.k8s.io")}
    services = {s["metadata"]["name"]: s for s in objects(docs, "Service", "serving.knative.dev")}
    long = [f for f in FUNCTIONS if "timeout_s" in PLATFORM["functions"][f] and not is_event_function(f)]
    assert "analyses" in long
    for function in long:
        timeout = services[dns(function)]["spec"]["template"]["spec"]["timeoutSeconds"]
        for key in ("proxy-read-timeout", "proxy-send-timeout"):
            assert int(ingresses[function][f"nginx.ingress.kubernetes.io/{key}"]) >= timeout, (function, key)


# ------------------------------------------------------------------ eventing


def expected_filters(accepts: list[str]) -> list[dict[str, Any]]:
    terms = [{"prefix": {"type": a[:-1]}} if a.endswith("*") else {"exact": {"type": a}} for a in accepts]
    return terms if len(terms) == 1 else [{"any": terms}]


@pytest.mark.parametrize("consumer", sorted(CATALOGUE.get("consumers") or {}))
def test_every_consumer_has_its_trigger(docs, consumer):
    spec = CATALOGUE["consumers"][consumer]
    triggers = {t["metadata"].get("labels", {}).get("medflow.org/consumer"): t for t in objects(docs, "Trigger")}
    assert consumer in triggers, (f"consumer {consumer} of events/catalogue.yaml has no Trigger: "
                                  "run `python k8s/generate.py`")
    trigger = triggers[consumer]["spec"]
    assert trigger["broker"] == "medflow"
    assert trigger["filters"] == expected_filters(spec["accepts"]), "the Trigger must filter on the accepted types"
    assert trigger["subscriber"]["ref"] == {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
                                            "name": dns(spec["function"])}
    policy = {**CATALOGUE["defaults"]["delivery"], **(spec.get("delivery") or {})}
    delivery = trigger["delivery"]
    assert delivery["retry"] == policy["retry"] - 1, "Knative retries after the first attempt: attempts - 1"
    assert delivery["backoffPolicy"] == policy["backoffPolicy"]
    assert delivery["backoffDelay"] == policy["backoffDelay"]
    sinks = {s["metadata"]["name"]: s for s in objects(docs, "KafkaSink")}
    sink = sinks[delivery["deadLetterSink"]["ref"]["name"]]
    assert sink["spec"]["topic"] == CATALOGUE["defaults"]["dead_letter_topic"].format(group=consumer)


@pytest.mark.parametrize("consumer", sorted(CATALOGUE.get("consumers") or {}))
def test_every_consumer_is_a_cloudevent_function(consumer):
    function = CATALOGUE["consumers"][consumer]["function"]
    assert (REPO / "functions" / function / "main.py").exists(), f"{consumer}: no functions/{function}/"
    assert is_event_function(function)


def test_every_catalogue_topic_feeds_the_broker(docs):
    (source,) = objects(docs, "KafkaSource")
    topics = {e["topic"] for e in CATALOGUE["events"].values()} | set(CATALOGUE.get("topics") or {})
    assert set(source["spec"]["topics"]) == topics
    assert source["spec"]["sink"]["ref"]["kind"] == "Broker"


def test_every_trigger_is_a_catalogue_consumer(docs):
    consumers = set(CATALOGUE.get("consumers") or {})
    for trigger in objects(docs, "Trigger"):
        assert trigger["metadata"]["labels"]["medflow.org/consumer"] in consumers


# ------------------------------------------------------------------ models


def test_five_models_and_the_llm_are_declared():
    assert len(PLATFORM["models"]) == 5
    assert PLATFORM["llm"]["name"]


@pytest.mark.parametrize("model", sorted(set(MODELS) | set(PLATFORM["models"])))
def test_every_model_has_its_inference_service(docs, model):
    services = {i["metadata"]["labels"].get("medflow.org/model"): i for i in objects(docs, "InferenceService")}
    assert model in services, (f"model {model} (kserve/{model}/) has no InferenceService: add it to "
                               "k8s/platform.yaml `models:` and run `python k8s/generate.py`")
    predictor = services[model]["spec"]["predictor"]
    assert predictor["model"]["storageUri"].startswith(f"s3://medflow-models/{model}/")
    assert predictor["serviceAccountName"] == "medflow-models"
    assert f"--models={model}" in predictor["model"]["args"]
    assert 0 <= predictor["canaryTrafficPercent"] <= 100


def test_gpu_placement_except_in_the_cpu_overlay(rendered):
    for overlay, docs in rendered.items():
        for isvc in objects(docs, "InferenceService"):
            predictor = isvc["spec"]["predictor"]
            limits = predictor["model"]["resources"]["limits"]
            if overlay == "cpu":
                assert "nvidia.com/gpu" not in limits and "nodeSelector" not in predictor and "tolerations" not in predictor
            else:
                assert limits["nvidia.com/gpu"] == "1"
                assert predictor["nodeSelector"] == {"medflow.org/accelerator": "nvidia-gpu"}
                assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in predictor["tolerations"]


def test_the_llm_runs_on_the_hugging_face_runtime(docs):
    (llm,) = [i for i in objects(docs, "InferenceService") if i["metadata"]["name"] == PLATFORM["llm"]["name"]]
    assert llm["spec"]["predictor"]["model"]["modelFormat"]["name"] == "huggingface"


def test_models_url_names_every_inference_service(docs):
    """MEDFLOW_MODELS_URL, filled in for each model as medflow.analysis.client.KServeClient
    does ({model}: the v2 model name, {model_dns}: the InferenceService name), is the
    cluster-local address of that model's predictor (KServe Serverless: the Knative Service
    <isvc>-predictor, reached at <name>.<namespace>.svc.cluster.local)."""
    (config,) = [c for c in objects(docs, "ConfigMap") if c["metadata"]["name"] == "medflow-config"]
    template = config["data"]["MEDFLOW_MODELS_URL"]
    services = {i["metadata"]["labels"]["medflow.org/model"]: i for i in objects(docs, "InferenceService")}
    for model in PLATFORM["models"]:
        meta = services[model]["metadata"]
        assert services[model]["spec"]["predictor"]["model"]["protocolVersion"] == "v2"
        url = template.format(model=model, model_dns=dns(model))
        assert url == f"http://{meta['name']}-predictor.{meta['namespace']}.svc.cluster.local", (model, url)


# ------------------------------------------------------------------ schedules


def function_pod(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pod spec, container) of a Knative Service: what every function runs with."""
    (service, *_) = objects(docs, "Service", "serving.knative.dev")
    pod = service["spec"]["template"]["spec"]
    return pod, pod["containers"][0]


@pytest.mark.parametrize("name", sorted(PLATFORM.get("schedules") or {}))
def test_every_schedule_is_a_cron_job_like_the_functions(docs, name):
    spec = PLATFORM["schedules"][name]
    jobs = {j["metadata"]["name"]: j for j in objects(docs, "CronJob")}
    assert dns(name) in jobs, f"schedule {name} of k8s/platform.yaml has no CronJob: run `python k8s/generate.py`"
    cron = jobs[dns(name)]["spec"]
    assert cron["schedule"] == spec["schedule"]
    assert cron["concurrencyPolicy"] == "Forbid"
    assert cron["successfulJobsHistoryLimit"] >= 1 and cron["failedJobsHistoryLimit"] >= 1
    job = cron["jobTemplate"]["spec"]
    assert 0 < job["activeDeadlineSeconds"] < 60, "a pass must end before the next minute's"
    pod = job["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == spec["command"]
    # The same image, ConfigMap, Secrets and JWT key set as the functions.
    fn_pod, fn_container = function_pod(docs)
    for key in ("image", "envFrom", "env", "volumeMounts"):
        assert container[key] == fn_container[key], key
    assert pod["volumes"] == fn_pod["volumes"]
    assert pod["serviceAccountName"] == fn_pod["serviceAccountName"]
    assert pod["restartPolicy"] == "Never" and pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["resources"]["requests"] and container["resources"]["limits"]


def test_every_cron_job_is_a_schedule(docs):
    assert {j["metadata"]["name"] for j in objects(docs, "CronJob")} == {dns(n) for n in PLATFORM.get("schedules") or {}}


@pytest.mark.parametrize("name, command", [("analysis-reaper", ["medflow", "analysis", "reap"]),
                                           ("outbox-sweeper", ["medflow", "outbox", "sweep"])])
def test_the_reaper_and_the_outbox_sweep_run_every_minute(docs, name, command):
    (job,) = [j for j in objects(docs, "CronJob") if j["metadata"]["name"] == name]
    assert job["spec"]["schedule"] == "* * * * *"
    (container,) = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["command"] == command


@pytest.mark.parametrize("name", sorted(PLATFORM.get("schedules") or {}))
def test_every_schedule_runs_a_real_cli_command(name):
    command = PLATFORM["schedules"][name]["command"]
    assert command[0] == "medflow"
    # The CLI parses the arguments (`--help` after them: an unknown command or choice still
    # fails, exit 2; nothing runs).
    done = subprocess.run([sys.executable, "-m", "medflow.cli", *command[1:], "--help"], capture_output=True,
                          text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0, f"`{' '.join(command)}` is not a command of medflow/cli.py:\n{done.stderr}"


# ------------------------------------------------------------------ configuration


def test_every_env_var_a_manifest_sets_is_a_setting(docs):
    known = settings_env_names()
    config_maps = {(c["metadata"]["namespace"], c["metadata"]["name"]): c for c in objects(docs, "ConfigMap")}
    seen = set()
    for doc in docs:
        namespace = doc["metadata"].get("namespace")
        for container in containers(doc):
            for env in container.get("env", []):
                seen.add(env["name"])
                assert env["name"] in known, (f"{doc['kind']} {doc['metadata']['name']} sets {env['name']}, "
                                              "which medflow/config.py does not read")
            for source in container.get("envFrom", []):
                ref = source.get("configMapRef")
                assert ref, "only ConfigMaps are imported whole (Secrets are named key by key)"
                data = config_maps[(namespace, ref["name"])]["data"]
                for name in data:
                    seen.add(name)
                    assert name in known, f"ConfigMap {ref['name']} sets {name}, which medflow/config.py does not read"
    assert "MEDFLOW_DATABASE_URL" in seen and "MEDFLOW_KAFKA_BOOTSTRAP" in seen


def test_config_maps_hold_no_secrets(docs):
    from medflow.config import Settings
    secret_fields = {f"MEDFLOW_{n.upper()}" for n, f in Settings.model_fields.items()
                     if "SecretStr" in str(f.annotation)}
    assert "MEDFLOW_DATABASE_URL" in secret_fields
    for cm in objects(docs, "ConfigMap"):
        leaked = secret_fields & set(cm.get("data", {}))
        assert not leaked, f"ConfigMap {cm['metadata']['name']} carries secret settings {leaked}: use a Secret"
    assert not objects(docs, "Secret"), "Secrets are written by Terraform, never kept in the repo"


# ------------------------------------------------------------------ cluster hygiene


def test_every_namespaced_object_names_its_namespace(docs):
    cluster_scoped = {"Namespace"}
    for doc in docs:
        if doc["kind"] not in cluster_scoped:
            assert doc["metadata"].get("namespace") in ("medflow", "medflow-data"), doc["metadata"]["name"]


def test_state_stores_accept_only_the_platform(docs):
    policies = {p["metadata"]["name"]: p["spec"] for p in objects(docs, "NetworkPolicy")}
    deny = policies["default-deny-ingress"]
    assert deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress"] and "ingress" not in deny
    allowed = policies["allow-platform-to-stores"]["ingress"][0]["from"]
    assert allowed == [{"namespaceSelector": {"matchLabels": {"medflow.org/platform": "true"}}}]
    (platform_ns,) = [n for n in objects(docs, "Namespace") if n["metadata"]["name"] == "medflow"]
    assert platform_ns["metadata"]["labels"]["medflow.org/platform"] == "true"


def test_dicom_receiver_is_a_deployment_with_a_service_and_a_budget(docs):
    (deployment,) = [d for d in objects(docs, "Deployment") if d["metadata"]["name"] == "dicom-receiver"]
    (service,) = [s for s in objects(docs, "Service", "") if s["metadata"]["name"] == "dicom-receiver"]
    (pdb,) = [p for p in objects(docs, "PodDisruptionBudget") if p["metadata"]["name"] == "dicom-receiver"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in service["spec"]["selector"].items())
    assert all(labels.get(k) == v for k, v in pdb["spec"]["selector"]["matchLabels"].items())
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert service["spec"]["ports"][0]["port"] == PLATFORM["dicom_receiver"]["port"]


def test_overlays_pin_registry_images(docs):
    for doc in docs:
        for container in containers(doc):
            image = container.get("image")
            if image:
                assert image.startswith("registry.example.org/medflow/") and ":" in image, image


def test_one_kafka_address_everywhere(docs):
    """Functions (ConfigMap), the KafkaSource and the dead-letter sinks reach the same Kafka,
    the one infra/terraform/modules/kafka names (<cluster>-kafka-bootstrap.<namespace>)."""
    (config,) = [c for c in objects(docs, "ConfigMap") if c["metadata"]["name"] == "medflow-config"]
    bootstrap = config["data"]["MEDFLOW_KAFKA_BOOTSTRAP"]
    assert bootstrap == "medflow-kafka-bootstrap.medflow-data.svc:9092"
    for kind in ("KafkaSource", "KafkaSink"):
        for obj in objects(docs, kind):
            assert obj["spec"]["bootstrapServers"] == [bootstrap], obj["metadata"]["name"]
    kafka_tf = (REPO / "infra" / "terraform" / "modules" / "kafka" / "outputs.tf").read_text()
    assert '"${var.cluster_name}-kafka-bootstrap.${var.namespace}.svc:9092"' in kafka_tf


def test_release_jobs_set_only_settings_and_use_the_migrate_account():
    known = settings_env_names()
    for path in sorted((K8S / "jobs").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            for container in containers(doc):
                for env in container.get("env", []):
                    assert env["name"] in known, f"{path.name} sets {env['name']}"
    job = yaml.safe_load((K8S / "jobs" / "migrate.yaml").read_text())
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["medflow", "migrate"]
    (url,) = [e for e in container["env"] if e["name"] == "MEDFLOW_DATABASE_URL"]
    assert url["valueFrom"]["secretKeyRef"]["key"] == "database-migrate-url"
    secrets_tf = (REPO / "infra" / "terraform" / "modules" / "platform-secrets" / "main.tf").read_text()
    assert '"database-migrate-url"' in secrets_tf


def test_every_function_has_a_disruption_budget(docs):
    budgets = {p["spec"]["selector"]["matchLabels"].get("serving.knative.dev/service")
               for p in objects(docs, "PodDisruptionBudget")}
    for service in objects(docs, "Service", "serving.knative.dev"):
        assert service["metadata"]["name"] in budgets, service["metadata"]["name"]


def test_the_model_server_runs_on_the_cpu_where_there_is_no_gpu(rendered):
    for overlay, docs in rendered.items():
        (runtime,) = objects(docs, "ServingRuntime")
        (container,) = runtime["spec"]["containers"]
        if overlay == "cpu":
            assert "/medflow/model-server:" in container["image"] and "--cpu" in container["args"]
        else:
            assert "/medflow/model-server-gpu:" in container["image"] and "--cpu" not in container["args"]
