"""A Kafka broker or a Redis of one test's own, to stop and start without touching the session's.

They are the local stack's own services (``KafkaService``, ``RedisService``: what ``tmstream stack
up`` starts) with a private state folder and free ports.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from tests.integration.conftest import free_port
from tmstream.ground.settings import Settings, load_settings
from tmstream.stack.kafka import KafkaService
from tmstream.stack.process import wait_until
from tmstream.stack.redis import RedisService


def start_and_wait(service: KafkaService | RedisService, timeout: float) -> float:
    """Start the service and return the seconds until it answered."""
    started = time.monotonic()
    service.start()
    assert wait_until(service.healthy, timeout, 0.25), service.process.log_tail()
    return time.monotonic() - started


Service = TypeVar("Service", KafkaService, RedisService)


@contextmanager
def running(service: Service, timeout: float) -> Iterator[Service]:
    """The service checked, started and answering within ``timeout`` s; stopped on the way out."""
    service.preflight()
    start_and_wait(service, timeout)
    try:
        yield service
    finally:
        service.process.stop()


@contextmanager
def private_kafka(folder: Path, **kafka: object) -> Iterator[KafkaService]:
    settings: Settings = load_settings(
        {
            "environment": "testing",
            "state_dir": str(folder),
            "kafka": {"port": free_port(), "controller_port": free_port(), **kafka},
        }
    )
    with running(KafkaService(settings), 120) as service:
        yield service


@contextmanager
def private_redis(folder: Path, **redis: object) -> Iterator[RedisService]:
    settings = load_settings(
        {"environment": "testing", "state_dir": str(folder), "redis": {"port": free_port(), **redis}}
    )
    with running(RedisService(settings), 20) as service:
        yield service
