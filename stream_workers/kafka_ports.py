"""The worker core's Kafka ports: Faust's producer for sending, kafka-python for reading outside
the group, and the topics a worker needs before it subscribes."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Iterator, Mapping
from typing import Any

import faust
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import TopicAlreadyExistsError
from kafka.structs import TopicPartition

from producers.registry import ChannelRegistry, required_topics
from stream_workers.ports import Partition, RecordRef
from tmstream.ground.settings import Settings
from tmstream.ground.topic_reader import end_offset, read_range, read_topic
from tmstream.ground.topics import connect_admin, create_topics


def record_ref(record: ConsumerRecord) -> RecordRef:
    headers = tuple((name, value) for name, value in record.headers or [])
    return RecordRef(
        record.topic, record.partition, record.offset, record.key, record.value, headers, record.timestamp
    )


class KafkaTopicReader:
    """``TopicReader`` over kafka-python consumers without a group (one per read)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def read_range(self, partition: Partition, start: int, stop: int) -> list[RecordRef]:
        tp = TopicPartition(partition.topic, partition.partition)
        return [record_ref(record) for record in read_range(self.settings, {tp: (start, stop)})]

    def read_topic(self, topic: str, since_ms: int | None = None) -> Iterator[RecordRef]:
        return (record_ref(record) for record in read_topic(self.settings, topic, since_ms))

    def end_offset(self, partition: Partition) -> int:
        return end_offset(self.settings, TopicPartition(partition.topic, partition.partition))


class FaustRecordSender:
    """``RecordSender`` through the Faust app's producer (raw keys and values)."""

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self.topics: dict[str, Any] = {}

    async def send(
        self, topic: str, key: bytes | None, value: bytes, headers: Mapping[str, bytes] | None = None
    ) -> Awaitable[object]:
        if topic not in self.topics:
            self.topics[topic] = self.app.topic(topic, key_serializer="raw", value_serializer="raw")
        return await self.topics[topic].send(key=key, value=value, headers=dict(headers or {}))


class TelemetryTopics:
    """The telemetry topics a worker subscribes to, and the topics it writes, created up front."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pattern = re.compile(settings.kafka.telemetry_topic_pattern)
        self.admin: KafkaAdminClient | None = None  # opened by prepare, kept for discovery

    def matching(self, names: list[str]) -> list[str]:
        return sorted(name for name in names if self.pattern.fullmatch(name))

    def prepare(self, channels: ChannelRegistry) -> list[str]:
        """Create what is missing of the registry's topics, the sinks' topics and the compacted
        state topic; the telemetry topics now on the broker. One admin client and one topic list
        when the deploy step (``tmstream topics create``) made them all; the client is kept for
        discovery."""
        kafka = self.settings.kafka
        names = set(self._admin().list_topics())
        missing = [name for name in required_topics(self.settings, channels) if name not in names]
        create_topics(self.settings, self._admin(), missing)
        if kafka.state_topic not in names:
            topic = NewTopic(
                kafka.state_topic,
                num_partitions=1,
                replication_factor=kafka.replication_factor,
                topic_configs={"cleanup.policy": "compact", "segment.ms": "600000"},
            )
            with contextlib.suppress(TopicAlreadyExistsError):  # a worker starting beside us won
                self._admin().create_topics([topic])
        return self.matching([*names, *missing])

    def discover(self) -> list[str]:
        """The telemetry topics on the broker, through the one admin client this worker keeps (a
        client per tick cost a connection, its metadata and an I/O thread every second)."""
        try:
            return self.matching(self._admin().list_topics())
        except Exception:
            self.close()
            raise

    def _admin(self) -> KafkaAdminClient:
        if self.admin is None:
            self.admin = connect_admin(self.settings)
        return self.admin

    def close(self) -> None:
        if self.admin is not None:
            self.admin.close()
            self.admin = None
