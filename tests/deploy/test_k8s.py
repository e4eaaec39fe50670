"""deploy/k8s/: schema-valid manifests (offline, kubernetes-validate) that fit the service."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml

kubernetes_validate = pytest.importorskip("kubernetes_validate")

K8S_DIR = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
NAME = "sentiment-rnn"
# The oldest minor still commonly run, and the newest the installed schemas know.
VERSIONS = sorted({"1.30.0", kubernetes_validate.utils.latest_version()})


def _docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


MANIFESTS = sorted(p for p in K8S_DIR.glob("*.yaml") if p.name != "kustomization.yaml")
RESOURCES = [(p.name, doc) for p in MANIFESTS for doc in _docs(p)]
BATCH_DIR = K8S_DIR / "batch"
BATCH = sorted(p for p in BATCH_DIR.glob("*.yaml") if p.name != "kustomization.yaml")
BATCH_RESOURCES = [(f"batch/{p.name}", doc) for p in BATCH for doc in _docs(p)]


def _one(kind: str) -> dict[str, Any]:
    found = [doc for _, doc in RESOURCES if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _container() -> dict[str, Any]:
    [container] = _one("Deployment")["spec"]["template"]["spec"]["containers"]
    return container


def _env() -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in _container().get("env", [])}


def _cpu(quantity: str | int | float) -> float:
    text = str(quantity)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def test_manifests_present() -> None:
    kinds = sorted(doc["kind"] for _, doc in RESOURCES)
    assert kinds == ["Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("filename", "doc"),
    RESOURCES + BATCH_RESOURCES,
    ids=[f"{f}:{d['kind']}" for f, d in RESOURCES + BATCH_RESOURCES],
)
def test_schema_valid(filename: str, doc: dict[str, Any], version: str) -> None:
    # strict: unknown fields (typos) fail too; a missing schema (wrong apiVersion) raises.
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        pytest.fail(f"{filename}: {doc['kind']} invalid for Kubernetes {version}: {path}: {exc.message}")
    except kubernetes_validate.utils.SchemaNotFoundError as exc:
        pytest.fail(f"{filename}: {exc.message}")


def test_kustomization_lists_every_manifest() -> None:
    [kustomization] = _docs(K8S_DIR / "kustomization.yaml")
    assert sorted(kustomization["resources"]) == sorted(p.name for p in MANIFESTS)


def test_probes() -> None:
    container = _container()
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert port_names == {"http": 8000}
    expected = {"startupProbe": "/health", "readinessProbe": "/health", "livenessProbe": "/health/live"}
    for probe, path in expected.items():
        get = container[probe]["httpGet"]
        assert get["path"] == path, probe
        assert get["port"] in ("http", 8000), probe
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60, "allow a minute to load"


def test_probes_are_answered_beyond_the_connection_cap() -> None:
    # httpGet probes are GETs; the protocol layer answers these paths even when MAX_CONNECTIONS
    # connections are open (service/server/http_guard.py), so a connection flood cannot fail them.
    from service.server.http_guard import PROBE_METHODS, PROBE_PATHS

    container = _container()
    assert "GET" in PROBE_METHODS
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] in PROBE_PATHS, probe


def test_one_worker_per_cpu_of_the_limit() -> None:
    resources = _container()["resources"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[kind]), kind
    limit = _cpu(resources["limits"]["cpu"])
    env = _env()
    # Workers x torch threads must not oversubscribe the CPUs the pod may use.
    threads = int(env["TORCH_THREADS"]["value"]) if "TORCH_THREADS" in env else 1
    assert threads == 1, "one torch thread per worker; the workers use the other CPUs"
    workers = env.get("WORKERS")
    if workers is None:  # the service reads the cgroup quota itself
        return
    if "value" in workers:
        assert int(workers["value"]) == math.ceil(limit)
    else:
        ref = workers["valueFrom"]["resourceFieldRef"]
        assert ref["resource"] == "limits.cpu"
        assert ref.get("containerName", _container()["name"]) == _container()["name"]
        assert str(ref.get("divisor", "1")) == "1"


def test_grace_period_outlasts_the_drain() -> None:
    spec = _one("Deployment")["spec"]["template"]["spec"]
    env = _env()
    drain = float(env["DRAIN_DELAY_S"]["value"]) if "DRAIN_DELAY_S" in env else 0.0
    # The service's own default (service/config.py) applies when the variable is unset.
    shutdown = float(env["SHUTDOWN_TIMEOUT_S"]["value"]) if "SHUTDOWN_TIMEOUT_S" in env else 30.0
    assert drain > 0, "a drain delay lets endpoint removal propagate before the server stops"
    assert spec["terminationGracePeriodSeconds"] > drain + shutdown


def test_runs_as_the_images_non_root_user() -> None:
    pod = _one("Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    container = _container()["securityContext"]
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"]["drop"] == ["ALL"]


def test_service_selects_the_pods() -> None:
    deployment, service = _one("Deployment"), _one("Service")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert service["spec"]["selector"].items() <= pod_labels.items()
    [port] = service["spec"]["ports"]
    assert port["targetPort"] in ("http", 8000)
    pdb = _one("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_hpa_targets_the_deployment() -> None:
    deployment, hpa = _one("Deployment"), _one("HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        "apps/v1",
        "Deployment",
        deployment["metadata"]["name"],
    )
    assert deployment["metadata"]["name"] == NAME
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    [metric] = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    # Utilization is a percentage of the request, so there must be one.
    assert "cpu" in _container()["resources"]["requests"]
    pdb = _one("PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"], "drains must be able to evict"


def test_batch_scoring_is_an_indexed_job_over_every_shard() -> None:
    [(_, job)] = BATCH_RESOURCES
    assert job["kind"] == "Job"
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert 1 <= spec["parallelism"] <= spec["completions"]
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["securityContext"]["runAsNonRoot"] is True
    [container] = pod["containers"]
    assert container["command"] == ["python", "-m", "model.predict"]
    args = container["args"]
    # --shard I/N: I from the pod's completion index, N the Job's completions.
    shard = args[args.index("--shard") + 1]
    assert shard == f"$(JOB_COMPLETION_INDEX)/{spec['completions']}"
    assert "$(JOB_COMPLETION_INDEX)" in args[args.index("--out") + 1], "one output part per shard"
    env = {e["name"]: e for e in container["env"]}
    field = env["JOB_COMPLETION_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert field == "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    resources = container["resources"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[kind]), kind
    threads = env["OMP_NUM_THREADS"]["valueFrom"]["resourceFieldRef"]
    assert threads["resource"] == "limits.cpu" and threads["containerName"] == container["name"]
    [kustomization] = _docs(BATCH_DIR / "kustomization.yaml")
    assert kustomization["resources"] == [p.name for p in BATCH]
