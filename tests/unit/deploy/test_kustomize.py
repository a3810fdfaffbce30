"""deploy/k8s (kustomize) against the repository, the settings and the CLI it runs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tmstream.ground.settings import PROJECT_ROOT, WorkerSettings, config_dir, load_settings

K8S = PROJECT_ROOT / "deploy" / "k8s"
OVERLAY = K8S / "overlays" / "example"
PORT = WorkerSettings().metrics_port


def documents(folder: Path) -> list[dict[str, Any]]:
    return [
        doc for path in sorted(folder.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc
    ]


def kustomization(folder: Path) -> dict[str, Any]:
    return yaml.safe_load((folder / "kustomization.yaml").read_text())


def containers(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    pods = [doc["spec"]["template"]["spec"] for doc in docs if doc["kind"] in ("Deployment", "Job")]
    return [c for pod in pods for c in [*pod.get("initContainers", []), *pod["containers"]]]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [found] = [doc for doc in docs if doc["kind"] == kind]
    return found


@pytest.mark.parametrize("folder", [K8S / "base", OVERLAY], ids=["base", "overlay"])
def test_resources_and_generated_files_exist(folder: Path) -> None:
    spec = kustomization(folder)
    for resource in spec["resources"]:
        assert (folder / resource).exists(), resource
    for generator in spec.get("configMapGenerator", []):
        for file in generator.get("files", []):
            assert (folder / file).is_file(), file


def test_the_config_map_is_the_repository_config() -> None:
    [generator] = kustomization(K8S / "base")["configMapGenerator"]
    files = {(K8S / "base" / file).resolve() for file in generator["files"]}
    production = {config_dir() / name for name in ("default.yaml", "production.yaml", "channels.yaml")}
    assert files == {path.resolve() for path in production}


def test_commands_and_variables_are_tmstream_ones(parse_cli, setting_variables) -> None:
    found = containers(documents(K8S / "base"))
    assert {c["args"][0] for c in found} == {"worker", "topics", "models", "replay"}
    for container in found:
        parse_cli(container["args"])
        assert {e["name"] for e in container["env"]} <= setting_variables
        for entry in container["env"]:
            if "valueFrom" in entry:
                assert entry["valueFrom"]["secretKeyRef"]["name"] == "tmstream-credentials"
    [env] = kustomization(OVERLAY)["configMapGenerator"]
    assert {literal.split("=")[0] for literal in env["literals"]} <= setting_variables


def test_the_overlay_settings_load(monkeypatch) -> None:
    for key in [key for key in os.environ if key.startswith("TMSTREAM_")]:
        monkeypatch.delenv(key)
    [env] = kustomization(OVERLAY)["configMapGenerator"]
    for literal in env["literals"]:
        monkeypatch.setenv(*literal.split("=", 1))
    monkeypatch.setenv("TMSTREAM_ENVIRONMENT", "production")
    settings = load_settings()
    assert settings.kafka.security_protocol == "SASL_PLAINTEXT" and settings.worker.metrics_host == "0.0.0.0"


def test_probes_service_and_autoscaler_fit_the_worker() -> None:
    docs = documents(K8S / "base")
    deployment = by_kind(docs, "Deployment")
    [worker] = deployment["spec"]["template"]["spec"]["containers"]
    assert worker["ports"] == [{"name": "metrics", "containerPort": PORT}]
    assert worker["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "metrics"}
    assert worker["livenessProbe"]["httpGet"] == {"path": "/health", "port": "metrics"}
    service = by_kind(docs, "Service")
    assert service["metadata"]["annotations"]["prometheus.io/port"] == str(PORT)
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    hpa = by_kind(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    production = yaml.safe_load((config_dir() / "production.yaml").read_text())
    assert hpa["spec"]["maxReplicas"] == production["kafka"]["topic_partitions"]


def rendered(folder: Path) -> list[dict[str, Any]]:
    if not shutil.which("kubectl"):
        pytest.skip("no kubectl: `kubectl kustomize` not run")
    command = ["kubectl", "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(folder)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def test_kubectl_kustomize_renders_the_overlay() -> None:
    docs = rendered(OVERLAY)
    assert {doc["metadata"].get("namespace") for doc in docs if doc["kind"] != "Namespace"} == {"tmstream"}
    maps = {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == "ConfigMap"}
    config = next(doc for name, doc in maps.items() if name.startswith("tmstream-config-"))
    assert config["data"]["default.yaml"] == (config_dir() / "default.yaml").read_text()
    for container in containers(docs):
        assert container["image"] == "registry.example.com/tmstream:0.1.0"
        refs = {ref["configMapRef"]["name"] for ref in container["envFrom"]}
        assert refs <= set(maps), refs
