"""Reading a topic's records directly (kafka-python), outside the consumer group.

The worker uses it to rebuild what it must know before it acts: the last state snapshot of each
channel, the anomaly emissions already on the ``anomalies`` topic, and the records between a
snapshot and the first record Faust delivers.
"""

from __future__ import annotations

from collections.abc import Iterator

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from tmstream.ground.settings import Settings


def _consumer(settings: Settings) -> KafkaConsumer:
    return KafkaConsumer(
        **settings.kafka.client_options(),
        enable_auto_commit=False,
        group_id=None,
        client_id="tmstream-topic-reader",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )


def read_range(
    settings: Settings, partitions: dict[TopicPartition, tuple[int, int | None]]
) -> Iterator[ConsumerRecord]:
    """Records of each partition from ``start`` up to ``stop`` (exclusive; None: the current end)."""
    if not partitions:
        return
    consumer = _consumer(settings)
    try:
        consumer.assign(list(partitions))
        ends = consumer.end_offsets(list(partitions))
        beginnings = consumer.beginning_offsets(list(partitions))
        remaining: dict[TopicPartition, int] = {}
        for tp, (start, stop) in partitions.items():
            first = max(start, beginnings[tp])
            last = ends[tp] if stop is None else min(stop, ends[tp])
            if first < last:
                consumer.seek(tp, first)
                remaining[tp] = last
            else:
                consumer.pause(tp)
        while remaining:
            batch = consumer.poll(timeout_ms=1000, max_records=5000)
            for tp, records in batch.items():
                stop = remaining.get(tp)
                if stop is None:
                    continue
                for record in records:
                    if record.offset >= stop:
                        break
                    yield record
                if consumer.position(tp) >= stop:
                    del remaining[tp]
                    consumer.pause(tp)
    finally:
        consumer.close()


def read_topic(settings: Settings, topic: str) -> Iterator[ConsumerRecord]:
    """Every record currently on ``topic`` (all partitions), then stop."""
    consumer = _consumer(settings)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
    finally:
        consumer.close()
    yield from read_range(settings, {TopicPartition(topic, p): (0, None) for p in partitions})
