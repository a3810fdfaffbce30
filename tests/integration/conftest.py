"""The real local stack (Apache Kafka, Redis, Prometheus), started once per test session.

It reuses ``tmstream stack`` with the ``testing`` overlay (its own ports and state folder), so a
developer's stack can keep running beside it. Services the session started are stopped at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tmstream.settings import Settings, load_settings
from tmstream.stack import LocalStack


@pytest.fixture(scope="session")
def stack_settings() -> Settings:
    return load_settings({"environment": "testing"})


@pytest.fixture(scope="session")
def stack(stack_settings: Settings) -> Iterator[Settings]:
    local = LocalStack(stack_settings)
    already = {status.name for status in local.status() if status.healthy}
    local.up()
    yield stack_settings
    for service in local.services:
        if service.name not in already and service.managed:
            service.process.stop()


@pytest.fixture
def topic_name() -> str:
    """A topic name no other test uses."""
    return f"test.{uuid.uuid4().hex[:12]}"
