"""Reading a topic's records directly (kafka-python), outside the consumer group.

The worker uses it to rebuild what it must know before it acts: the last state snapshot of each
channel, the anomaly emissions already on the ``anomalies`` topic, and the records between a
snapshot and the first record Faust delivers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from tmstream.ground.exceptions import TopicReadError
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
    """Records of each partition from ``start`` up to ``stop`` (exclusive; None: the current end).

    ``TopicReadError`` when ``kafka.read_stall_s`` passes without a record: a read never hangs.
    """
    if not partitions:
        return
    consumer = _consumer(settings)
    try:
        yield from _read(consumer, partitions, settings.kafka.read_stall_s)
    finally:
        consumer.close()


def _read(
    consumer: KafkaConsumer, partitions: dict[TopicPartition, tuple[int, int | None]], stall: float
) -> Iterator[ConsumerRecord]:
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
    progress = time.monotonic()
    while remaining:
        if time.monotonic() - progress > stall:
            left = ", ".join(f"{tp.topic}[{tp.partition}] to {stop}" for tp, stop in remaining.items())
            raise TopicReadError(f"no record for {stall:g}s reading {left}")
        batch = consumer.poll(timeout_ms=1000, max_records=5000)
        if batch:
            progress = time.monotonic()
        for tp, records in batch.items():
            stop = remaining.get(tp)
            if stop is None:
                continue
            for record in records:
                if record.offset >= stop:
                    break
                yield record
        for tp, stop in list(remaining.items()):  # a compacted tail ends without a record
            if consumer.position(tp) >= stop:
                del remaining[tp]
                consumer.pause(tp)


def end_offset(settings: Settings, tp: TopicPartition) -> int:
    """The offset the next record of ``tp`` will get."""
    consumer = _consumer(settings)
    try:
        return int(consumer.end_offsets([tp])[tp])
    finally:
        consumer.close()


def read_topic(settings: Settings, topic: str, since_ms: int | None = None) -> Iterator[ConsumerRecord]:
    """Every record currently on ``topic`` (all partitions), then stop; with ``since_ms`` only the
    records from each partition's first one stamped at or after it (Kafka's time index).

    One consumer for the lookup and the read: a second one would fetch the topic's metadata again
    (≈0.25 s of a worker's start-up, which reads two topics so)."""
    consumer = _consumer(settings)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or set()]
        starts = dict.fromkeys(tps, 0)
        if since_ms is not None and tps:
            ends = consumer.end_offsets(tps)
            found = consumer.offsets_for_times(dict.fromkeys(tps, max(0, since_ms)))
            starts = {tp: ends[tp] if found[tp] is None else found[tp].offset for tp in tps}
        if tps:
            yield from _read(
                consumer, {tp: (start, None) for tp, start in starts.items()}, settings.kafka.read_stall_s
            )
    finally:
        consumer.close()
