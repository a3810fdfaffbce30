"""The local stack: Apache Kafka (KRaft), Redis and Prometheus as processes under ``state_dir``.

Alertmanager joins them when ``alertmanager.enabled``. Services whose endpoint is configured
externally (``TMSTREAM_KAFKA_BOOTSTRAP``, ``TMSTREAM_REDIS_URL``, ``TMSTREAM_PROMETHEUS_URL``,
``TMSTREAM_ALERTMANAGER_URL``) are only health-checked, never started.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol

from tmstream.ground.exceptions import StackError
from tmstream.ground.settings import Settings
from tmstream.stack.alertmanager import AlertmanagerService
from tmstream.stack.kafka import KafkaService
from tmstream.stack.process import ServiceProcess, wait_until
from tmstream.stack.prometheus import PrometheusService
from tmstream.stack.redis import RedisService

READY_TIMEOUT_S = {"kafka": 90.0, "redis": 15.0, "prometheus": 30.0, "alertmanager": 30.0}


class Service(Protocol):
    name: str
    process: ServiceProcess

    @property
    def address(self) -> str: ...

    @property
    def managed(self) -> bool: ...

    def healthy(self) -> bool: ...

    def preflight(self) -> None: ...

    def start(self) -> None: ...


@dataclass(frozen=True)
class ServiceStatus:
    """One line of ``tmstream stack status --json``: ``name``, ``address``, ``healthy`` (+ how it runs)."""

    name: str
    address: str
    healthy: bool
    managed: bool
    pid: int | None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _wait_ready(service: Service, timeout: float) -> bool:
    """Until the service answers, or its process died while starting (then fail at once)."""
    wait_until(lambda: service.healthy() or service.process.exited_early(), timeout, 0.5)
    return service.healthy()


class LocalStack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.services: list[Service] = [
            KafkaService(settings),
            RedisService(settings),
            PrometheusService(settings),
        ]
        if settings.alertmanager.enabled:
            self.services.append(AlertmanagerService(settings))

    def status(self) -> list[ServiceStatus]:
        return [
            ServiceStatus(s.name, s.address, s.healthy(), s.managed, s.process.pid()) for s in self.services
        ]

    def up(self) -> list[ServiceStatus]:
        """Start what is not running yet and wait until every service answers (idempotent)."""
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        for service in self.services:
            if service.healthy():
                continue
            if not service.managed:
                raise StackError(f"{service.name}: external endpoint {service.address} does not answer")
            if service.process.running():
                service.process.stop()
            service.preflight()
            service.start()
            if not _wait_ready(service, READY_TIMEOUT_S[service.name]):
                tail = service.process.log_tail()
                service.process.stop()
                raise StackError(
                    f"{service.name} did not become healthy at {service.address}; "
                    f"log {service.process.log_file}: {tail.splitlines()[-1] if tail else 'empty'}"
                )
        return self.status()

    def down(self) -> list[str]:
        """Stop only the processes ``up`` started (pid files under state_dir); returns their names."""
        return [s.name for s in reversed(self.services) if s.managed and s.process.stop()]
