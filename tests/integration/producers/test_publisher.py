"""TelemetryPublisher and topic creation against the real broker."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import REGISTRY

from producers.clients import ProducerTuning
from producers.dataset import TelemanomDataset
from producers.exceptions import MessageError, PublishError
from producers.publisher import TelemetryPublisher
from producers.registry import ChannelRegistry
from tests.integration.producers.kcat import kcat_records
from tmstream.ground.exceptions import BrokerUnavailableError
from tmstream.ground.settings import Settings
from tmstream.ground.topics import ConnectPolicy, describe_topics, ensure_topics


def with_client(stack: Settings, client: str) -> Settings:
    return stack.model_copy(update={"kafka": stack.kafka.model_copy(update={"producer_client": client})})


def test_publisher_batch_is_readable_by_kcat(
    stack: Settings, nasa: TelemanomDataset, registry_file: Path, topic_name: str, producer_client: str
) -> None:
    topic = f"{topic_name}.P-1"
    stack = with_client(stack, producer_client)
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
    assert [m["index"] for _, m in records] == [i for i in range(101) if i != 40], "in order, once each"
    assert records[0][1]["event_time_ms"] == 1_700_000_000_000
    assert records[0][1]["values"] == rows[0].tolist()
    assert REGISTRY.get_sample_value("tmstream_producer_points_sent_total", {"channel": "P-1"}) >= 100
    assert REGISTRY.get_sample_value("tmstream_producer_rows_rejected_total", {"channel": "P-1"}) >= 1


def test_publishing_to_a_missing_topic_is_a_typed_error(
    stack: Settings, nasa: TelemanomDataset, registry_file: Path, producer_client: str
) -> None:
    registry = ChannelRegistry(registry_file, nasa.root)
    tuning = ProducerTuning(max_block_ms=1500)
    with (
        TelemetryPublisher(with_client(stack, producer_client), registry, tuning=tuning) as publisher,
        pytest.raises(PublishError) as caught,
    ):
        publisher.publish("P-1", 0, [0.0] * 25)
    assert "does not exist" in str(caught.value)


def test_an_unreachable_broker_is_a_typed_error_in_bounded_time(
    stack: Settings, nasa: TelemanomDataset, registry_file: Path, producer_client: str
) -> None:
    kafka = stack.kafka.model_copy(update={"bootstrap": "127.0.0.1:9", "producer_client": producer_client})
    registry = ChannelRegistry(registry_file, nasa.root)
    started = time.monotonic()
    with pytest.raises(BrokerUnavailableError, match="2 attempts"):
        TelemetryPublisher(
            stack.model_copy(update={"kafka": kafka}),
            registry,
            connect=ConnectPolicy(attempts=2, bootstrap_timeout_ms=500, backoff_s=0.1),
        )
    assert time.monotonic() - started < 10


def test_topic_creation_is_idempotent(stack: Settings, topic_name: str) -> None:
    names = [f"{topic_name}.a", f"{topic_name}.b"]
    assert {r.status for r in ensure_topics(stack, names)} == {"created"}
    assert {r.status for r in ensure_topics(stack, [*names, f"{topic_name}.c"])[:2]} == {"exists"}
    described = {row["topic"]: row for row in describe_topics(stack)}
    assert described[names[0]]["partitions"] == stack.kafka.topic_partitions
    assert described[names[0]]["retention_ms"] == stack.kafka.retention_ms
