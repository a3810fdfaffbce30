"""The same three services through testcontainers, where a Docker engine is present.

Containers are published on the ports the settings name, so every other command finds them the
same way as the local processes; their ids are kept in ``<state_dir>/docker.json`` for ``down``.
The reaper is disabled because the containers must outlive the ``stack up`` command.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import TYPE_CHECKING

from tmstream.ground.exceptions import StackError
from tmstream.ground.settings import Settings
from tmstream.stack.process import wait_until
from tmstream.stack.prometheus import PrometheusService, scrape_config
from tmstream.stack.redis import RedisService

if TYPE_CHECKING:
    from tmstream.stack import ServiceStatus

KAFKA_IMAGE = "confluentinc/cp-kafka:7.9.0"  # Apache Kafka 3.9 in KRaft mode
REDIS_IMAGE = "redis:7.4-alpine"
PROMETHEUS_IMAGE = "prom/prometheus:v2.55.1"


def docker_available() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        import docker

        docker.from_env().ping()
    except Exception:  # the docker SDK raises several unrelated types when no engine answers
        return False
    return True


class DockerStack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.record = settings.state_dir / "docker.json"

    def up(self) -> list[ServiceStatus]:
        if not docker_available():
            raise StackError("--provider docker needs a running Docker engine; use --provider local")
        os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
        from testcontainers.community.kafka import KafkaContainer
        from testcontainers.core.container import DockerContainer

        from tmstream.stack import LocalStack

        kafka = KafkaContainer(KAFKA_IMAGE, port=9093).with_kraft()
        kafka.with_bind_ports(9093, self.settings.kafka.port)
        redis = DockerContainer(REDIS_IMAGE).with_bind_ports(6379, self.settings.redis.port)
        config = self.settings.state_dir / "prometheus" / "prometheus.docker.yml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(json.dumps(scrape_config(self.settings)))
        prometheus = (
            DockerContainer(PROMETHEUS_IMAGE)
            .with_bind_ports(9090, self.settings.prometheus.port)
            .with_volume_mapping(str(config), "/etc/prometheus/prometheus.yml", "ro")
        )
        started = [container.start() for container in (kafka, redis, prometheus)]
        self.record.write_text(json.dumps([c.get_wrapped_container().id for c in started]))
        stack = LocalStack(self.settings)
        checks: list[RedisService | PrometheusService] = [
            RedisService(self.settings),
            PrometheusService(self.settings),
        ]
        if not wait_until(lambda: all(s.healthy() for s in checks), 60):
            raise StackError("docker stack: Redis or Prometheus did not become healthy within 60 s")
        return stack.status()

    def down(self) -> int:
        if not self.record.exists():
            return 0
        import docker

        client = docker.from_env()
        ids = json.loads(self.record.read_text())
        for container_id in ids:
            client.containers.get(container_id).remove(force=True)
        self.record.unlink()
        return len(ids)
