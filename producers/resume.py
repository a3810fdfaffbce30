"""Where a replay left off: the last index of each channel already on its topic.

Reads only the tail of each partition (a growing window back from the end while a channel sharing a
topic has not been seen yet), so resuming costs a few fetches, not a scan of the topic. The
replay's idempotent producer keeps each channel's records in send order within its partition, so
the last record of a channel is the last point delivered.
"""

from __future__ import annotations

import time
from collections import defaultdict

from kafka import KafkaConsumer, TopicPartition

from producers.channel_spec import ChannelSpec
from producers.exceptions import MessageError, ProducerError
from producers.messages import TelemetryMessage
from tmstream.ground.settings import Settings
from tmstream.ground.topics import ConnectPolicy, connect_with_retries

FIRST_WINDOW = 16
READ_TIMEOUT_S = 30.0


def last_indices(
    settings: Settings, specs: list[ChannelSpec], policy: ConnectPolicy = ConnectPolicy()
) -> dict[str, int | None]:
    """The index of each channel's last record on its topic, or None when it has none."""
    consumer = connect_with_retries(
        settings,
        lambda timeout_ms: KafkaConsumer(
            **settings.kafka.client_options(),
            client_id="tmstream-resume",
            group_id=None,
            enable_auto_commit=False,
            bootstrap_timeout_ms=timeout_ms,
            fetch_max_wait_ms=50,
        ),
        policy,
        "resume",
    )
    try:
        return _read_tails(consumer, specs)
    finally:
        consumer.close()


def _read_tails(consumer: KafkaConsumer, specs: list[ChannelSpec]) -> dict[str, int | None]:
    channels_by_topic: dict[str, set[str]] = defaultdict(set)
    for spec in specs:
        channels_by_topic[spec.topic].add(spec.channel)
    partitions = [
        TopicPartition(topic, partition)
        for topic in channels_by_topic
        for partition in sorted(consumer.partitions_for_topic(topic) or ())
    ]
    found: dict[str, tuple[int, int]] = {}
    if partitions:
        consumer.assign(partitions)
        begin = consumer.beginning_offsets(partitions)
        end = consumer.end_offsets(partitions)
        window = FIRST_WINDOW
        pending = [tp for tp in partitions if end[tp] > begin[tp]]
        while pending:
            starts = {tp: max(begin[tp], end[tp] - window) for tp in pending}
            _read_ranges(consumer, starts, end, channels_by_topic, found)
            pending = [
                tp for tp in pending
                if starts[tp] > begin[tp] and not channels_by_topic[tp.topic] <= found.keys()
            ]  # fmt: skip
            window *= 4
    return {spec.channel: found[spec.channel][1] if spec.channel in found else None for spec in specs}


def _read_ranges(
    consumer: KafkaConsumer,
    starts: dict[TopicPartition, int],
    end: dict[TopicPartition, int],
    channels_by_topic: dict[str, set[str]],
    found: dict[str, tuple[int, int]],
) -> None:
    """Read ``[starts[tp], end[tp])`` of each partition, keeping each channel's highest-offset index."""
    consumer.assign(list(starts))
    for tp, offset in starts.items():
        consumer.seek(tp, offset)
    deadline = time.monotonic() + READ_TIMEOUT_S
    remaining = set(starts)
    while remaining:
        if time.monotonic() > deadline:
            raise ProducerError(
                f"resume: could not read the tail of {', '.join(map(str, remaining))} in time"
            )
        for tp, records in consumer.poll(timeout_ms=200).items():
            for record in records:
                if record.offset >= end[tp] or record.key is None or record.value is None:
                    continue
                channel = record.key.decode(errors="replace")
                if channel not in channels_by_topic[tp.topic]:
                    continue
                try:
                    index = TelemetryMessage.from_bytes(record.value).index
                except MessageError as exc:
                    raise ProducerError(
                        f"cannot resume {channel}: record {tp.topic}[{tp.partition}]@{record.offset} "
                        f"is not a telemetry message ({exc})"
                    ) from exc
                if channel not in found or record.offset > found[channel][0]:
                    found[channel] = (record.offset, index)
        remaining = {tp for tp in remaining if consumer.position(tp) < end[tp]}
