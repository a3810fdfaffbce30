"""TelemetryPublisher and topic creation against the real broker."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import REGISTRY

from producers.dataset import TelemanomDataset
from producers.exceptions import MessageError, PublishError
from producers.publisher import ProducerTuning, TelemetryPublisher
from producers.registry import ChannelRegistry
from tests.integration.producers.kcat import kcat_records
from tmstream.ground.settings import Settings
from tmstream.ground.topics import describe_topics, ensure_topics


def test_publisher_batch_is_readable_by_kcat(
    stack: Settings, nasa: TelemanomDataset, registry_file: Path, topic_name: str
) -> None:
    topic = f"{topic_name}.P-1"
    ensure_topics(stack, [topic])
    registry = ChannelRegistry(registry_file, nasa.root)
    rows = np.array(nasa.load("P-1")[:100])
    rows[40, 0] = math.nan
    with TelemetryPublisher(stack, registry) as publisher:
        rejected = publisher.publish_batch("P-1", 0, rows, event_time_ms=1_700_000_000_000)
        publisher.publish("P-1", 100, nasa.load("P-1")[100].tolist())
        with pytest.raises(MessageError) as caught:
            publisher.publish("P-1", 101, [0.0] * 24)
        assert caught.value.reason == "wrong_width"
    assert [(r.index, r.reason) for r in rejected] == [(40, "nan_or_inf")]
    assert publisher.stats.channel("P-1").sent == 100

    records = kcat_records(stack, topic)
    assert [m["index"] for _, m in records] == [i for i in range(101) if i != 40]
    assert records[0][1]["event_time_ms"] == 1_700_000_000_000
    assert records[0][1]["values"] == rows[0].tolist()
    assert REGISTRY.get_sample_value("tmstream_producer_points_sent_total", {"channel": "P-1"}) >= 100
    assert REGISTRY.get_sample_value("tmstream_producer_rows_rejected_total", {"channel": "P-1"}) >= 1


def test_publishing_to_a_missing_topic_is_a_typed_error(
    stack: Settings, nasa: TelemanomDataset, registry_file: Path
) -> None:
    registry = ChannelRegistry(registry_file, nasa.root)
    tuning = ProducerTuning(max_block_ms=1500)
    with (
        TelemetryPublisher(stack, registry, tuning=tuning) as publisher,
        pytest.raises(PublishError) as caught,
    ):
        publisher.publish("P-1", 0, [0.0] * 25)
    assert "does not exist" in str(caught.value)


def test_topic_creation_is_idempotent(stack: Settings, topic_name: str) -> None:
    names = [f"{topic_name}.a", f"{topic_name}.b"]
    assert {r.status for r in ensure_topics(stack, names)} == {"created"}
    assert {r.status for r in ensure_topics(stack, [*names, f"{topic_name}.c"])[:2]} == {"exists"}
    described = {row["topic"]: row for row in describe_topics(stack)}
    assert described[names[0]]["partitions"] == stack.kafka.topic_partitions
    assert described[names[0]]["retention_ms"] == stack.kafka.retention_ms
