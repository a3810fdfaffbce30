"""Detections a real replay produced: the closed ``tmstream.anomaly.v1`` events the worker emitted.

Scoring these with the same code as an offline run checks the deployed pipeline end to end (Kafka,
the worker's batching, snapshots, idle close) rather than the thresholding alone. Events are read
from the ``anomalies`` topic or the Redis stream ``tmstream:anomalies``; each anomaly counts once
(its last closed emission), whatever the number of replays or redeliveries that wrote it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Literal

from evaluation.detections import ScoredRange
from stream_workers.events import AnomalyEvent
from tmstream.ground.exceptions import StackError
from tmstream.ground.settings import Settings

EventOrigin = Literal["redis", "kafka"]


def kafka_events(settings: Settings) -> Iterator[AnomalyEvent]:
    """Every event currently on the anomalies topic, oldest first per partition."""
    from tmstream.ground.topic_reader import read_topic

    for record in read_topic(settings, settings.kafka.anomalies_topic):
        yield AnomalyEvent.from_bytes(record.value)


def redis_events(settings: Settings) -> Iterator[AnomalyEvent]:
    """Every emission still in the Redis event stream (bounded by ``redis.stream_maxlen``)."""
    from stream_workers.sinks.redis_sink import STREAM_KEY
    from tmstream.ground.redis import redis_client

    entries: list[tuple[bytes, dict[bytes, bytes]]] = redis_client(settings).xrange(STREAM_KEY)  # type: ignore[assignment]
    for _, fields in entries:
        yield AnomalyEvent.from_bytes(fields[b"event"])


def read_events(settings: Settings, origin: EventOrigin) -> list[AnomalyEvent]:
    """All recorded events of one origin; an unreachable broker or Redis is a StackError."""
    from kafka.errors import KafkaError
    from redis.exceptions import RedisError

    where = settings.kafka.bootstrap_servers if origin == "kafka" else settings.redis.effective_url
    try:
        return list(kafka_events(settings) if origin == "kafka" else redis_events(settings))
    except (KafkaError, RedisError) as exc:
        raise StackError(f"cannot read the anomaly events from {origin} at {where}: {exc}") from exc


def closed_detections(events: Iterable[AnomalyEvent]) -> dict[str, list[ScoredRange]]:
    """Per channel, the final range of each closed anomaly (one per event id), sorted by start."""
    final: dict[str, AnomalyEvent] = {}
    for event in events:
        if event.status == "closed":
            final[event.event_id] = event
    by_channel: dict[str, list[ScoredRange]] = {}
    for event in final.values():
        by_channel.setdefault(event.channel, []).append(
            ScoredRange(event.start_index, event.end_index, event.score)
        )
    return {channel: sorted(ranges, key=lambda r: r.start) for channel, ranges in by_channel.items()}
