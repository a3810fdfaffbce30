"""deploy/docker-compose.yml against the repository, the settings and the CLI it runs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from tmstream.ground.settings import PROJECT_ROOT, WorkerSettings, load_settings
from tmstream.stack import docker as docker_stack

DEPLOY = PROJECT_ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
PORT = WorkerSettings().metrics_port


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def tmstream_services(services: dict[str, Any]) -> dict[str, Any]:
    return {name: s for name, s in services.items() if "build" in s}


def test_every_file_it_mounts_or_builds_exists(services, interpolate) -> None:
    sources = [
        volume.split(":")[0]
        for service in services.values()
        for volume in service.get("volumes", [])
        if isinstance(volume, str) and volume.startswith(".")
    ]
    assert "./prometheus/rules" in sources and "./docker/prometheus.yml" in sources
    for source in sources:
        assert (DEPLOY / source).exists(), f"{source} is mounted but not in the repository"
    for service in tmstream_services(services).values():
        assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file()


def test_tmstream_variables_are_settings_and_load(
    services, setting_variables, interpolate, monkeypatch
) -> None:
    for name, service in tmstream_services(services).items():
        environment = {key: interpolate(str(value)) for key, value in service.get("environment", {}).items()}
        assert set(environment) <= setting_variables, f"{name}: not tmstream settings"
        for key in [key for key in os.environ if key.startswith("TMSTREAM_")]:
            monkeypatch.delenv(key)
        for key, value in environment.items():
            monkeypatch.setenv(key, value)
        if name == "worker":
            settings = load_settings()
            assert settings.kafka.bootstrap == "kafka:9092" and settings.kafka.replication_factor == 1
            assert settings.redis.url == "redis://redis:6379/0"


def test_commands_are_tmstream_commands(services, parse_cli, interpolate) -> None:
    commands = {
        name: [interpolate(arg) for arg in service["command"]]
        for name, service in tmstream_services(services).items()
        if "entrypoint" not in service
    }
    assert set(commands) == {"topics", "models", "worker", "replay"}
    for args in commands.values():
        parse_cli(args)


def test_the_worker_scales_and_is_found_by_prometheus(services) -> None:
    worker = services["worker"]
    assert "container_name" not in worker and "ports" not in worker
    assert worker["expose"] == [str(PORT)]
    assert f"127.0.0.1:{PORT}/health" in " ".join(worker["healthcheck"]["test"])
    prometheus = yaml.safe_load((DEPLOY / "docker" / "prometheus.yml").read_text())
    [job] = [job for job in prometheus["scrape_configs"] if job["job_name"] == "worker"]
    assert job["dns_sd_configs"] == [
        {"names": ["worker"], "type": "A", "port": PORT, "refresh_interval": "10s"}
    ]
    [target] = prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert target.split(":")[0] in services
    assert prometheus["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    assert "./prometheus/rules:/etc/prometheus/rules:ro" in services["prometheus"]["volumes"]


def test_dependencies_wait_for_health_and_one_shots(services) -> None:
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            expected = (
                "service_completed_successfully" if dependency in {"topics", "models"} else "service_healthy"
            )
            assert condition == {"condition": expected}, f"{name} → {dependency}"
            assert "healthcheck" in services[dependency] or expected != "service_healthy"


def test_images_match_the_stack_and_the_kafka_version(services) -> None:
    assert services["kafka"]["image"] == f"apache/kafka:{load_settings().kafka.version}"
    assert services["redis"]["image"] == docker_stack.REDIS_IMAGE
    assert services["prometheus"]["image"] == docker_stack.PROMETHEUS_IMAGE


def test_grafana_password_has_no_default_and_the_datasource_is_the_boards_one(services) -> None:
    assert services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"].startswith(
        "${GRAFANA_ADMIN_PASSWORD:?"
    )
    ours = yaml.safe_load((DEPLOY / "docker" / "grafana-datasource.yml").read_text())["datasources"]
    theirs = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/tmstream.yml").read_text())[
        "datasources"
    ]
    assert [(d["name"], d["uid"]) for d in ours] == [(d["name"], d["uid"]) for d in theirs]
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/tmstream.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    assert f"./grafana/dashboards:{path}:ro" in services["grafana"]["volumes"]


def test_env_example_sets_every_variable_the_file_needs() -> None:
    needed = set(re.findall(r"\$\{(\w+)", COMPOSE.read_text()))
    example = {
        line.split("=")[0] for line in (DEPLOY / ".env.example").read_text().splitlines() if "=" in line
    }
    assert needed == example


def test_prometheus_config_is_valid_with_the_rules(tmp_path) -> None:
    if not shutil.which("promtool"):
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    config = yaml.safe_load((DEPLOY / "docker" / "prometheus.yml").read_text())
    config["rule_files"] = [str(DEPLOY / "prometheus" / "rules" / "*.yml")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        ["promtool", "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"SUCCESS: [1-9]\d* rules found", result.stdout), result.stdout


def docker_compose() -> list[str]:
    if not shutil.which("docker"):
        pytest.skip("no docker client: `docker compose config` not run")
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("no docker compose plugin: `docker compose config` not run")
    return ["docker", "compose", "-f", str(COMPOSE)]


def test_docker_compose_config_accepts_it_and_needs_the_password() -> None:
    command = docker_compose()
    env = {key: value for key, value in os.environ.items() if key != "GRAFANA_ADMIN_PASSWORD"}
    result = subprocess.run(
        [*command, "config", "-q"], capture_output=True, text=True, env={**env, "GRAFANA_ADMIN_PASSWORD": "x"}
    )
    assert result.returncode == 0, result.stderr
    missing = subprocess.run([*command, "config", "-q"], capture_output=True, text=True, env=env)
    assert missing.returncode != 0 and "GRAFANA_ADMIN_PASSWORD" in missing.stderr
