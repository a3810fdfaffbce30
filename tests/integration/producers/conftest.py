"""A private channel registry per test, so replays never touch the shared topics."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

CONFLUENT = importlib.util.find_spec("confluent_kafka") is not None


@pytest.fixture
def registry_file(tmp_path: Path, topic_name: str) -> Path:
    """A registry that sends P-1 to this test's own topic (outside the workers' subscription)."""
    path = tmp_path / "channels.yaml"
    path.write_text(yaml.safe_dump({"channels": {"P-1": {"topic": f"{topic_name}.P-1"}}}))
    return path


@pytest.fixture(
    params=[
        "kafka-python",
        pytest.param(
            "confluent-kafka",
            marks=pytest.mark.skipif(not CONFLUENT, reason="the confluent extra is not installed"),
        ),
    ]
)
def producer_client(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each producer client in turn (``kafka.producer_client``), for this process and the replays
    it starts."""
    monkeypatch.setenv("TMSTREAM_KAFKA_PRODUCER_CLIENT", request.param)
    return str(request.param)
