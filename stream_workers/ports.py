"""The worker core's ports: what it needs from Kafka, the sinks, the clock and the metrics.

The core (``worker_core``, ``scoring``) states what happened and what it needs; adapters give it
Kafka (``kafka_ports``), Redis and Prometheus, and unit tests give it small in-memory versions, so
the recovery protocol is tested in milliseconds without a broker.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar, runtime_checkable

from stream_workers.events import AnomalyEvent

T = TypeVar("T")


@dataclass(frozen=True)
class RecordRef:
    """A raw Kafka record and where it came from; the dead-letter topic keeps all of it.

    ``value`` is None for a tombstone (a compacted topic's delete marker); ``timestamp_ms`` is the
    broker's record time (-1 where unknown).
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int = -1


@dataclass(frozen=True)
class Partition:
    topic: str
    partition: int


class RecordSender(Protocol):
    """Queues one record for sending; the returned awaitable completes on the broker's ack, so a
    caller can queue many records and then wait for all their acks."""

    async def send(
        self, topic: str, key: bytes | None, value: bytes, headers: Mapping[str, bytes] | None = None
    ) -> Awaitable[object]: ...


class TopicReader(Protocol):
    """Reads records outside the consumer group (blocking: the core runs it off the event loop);
    every read has a deadline and raises rather than hang."""

    def read_range(self, partition: Partition, start: int, stop: int) -> list[RecordRef]:
        """Records of ``partition`` from offset ``start`` up to ``stop`` (exclusive)."""
        ...

    def read_topic(self, topic: str, since_ms: int | None = None) -> Iterable[RecordRef]:
        """Every record now on ``topic``, all partitions; with ``since_ms``, from the first record
        of each partition stamped at or after it."""
        ...

    def end_offset(self, partition: Partition) -> int:
        """The offset the next record of ``partition`` will get."""
        ...


class EventSink(Protocol):
    """An idempotent sink of anomaly emissions: a second write of one emission changes nothing."""

    async def emit(self, event: AnomalyEvent) -> bool: ...


@runtime_checkable
class ReconcilingSink(EventSink, Protocol):
    """A sink that is a view of the ``anomalies`` topic (Redis): given the emissions read back from
    the topic, it writes those it lacks (what a killed predecessor had not written yet)."""

    async def reconcile(self, events: Iterable[AnomalyEvent]) -> int: ...


ChannelState = Mapping[str, str | float | int]


class ChannelStateSink(Protocol):
    async def update_channels(self, states: Iterable[tuple[str, ChannelState]]) -> None: ...


class Offloader(Protocol):
    """Runs blocking work (scoring, broker reads) off the event loop."""

    def __call__(self, function: Callable[[], T]) -> Awaitable[T]: ...


class MetricsPort(Protocol):
    """What the core reports; ``metrics.WorkerMetrics`` counts it in Prometheus."""

    def channel_started(self, spacecraft: str, channel: str) -> None: ...
    def point_consumed(self, spacecraft: str, channel: str) -> None: ...
    def point_redelivered(self, spacecraft: str, channel: str) -> None: ...
    def stream_reset(self, spacecraft: str, channel: str) -> None: ...
    def batch_scored(self, seconds: float, windows: int) -> None: ...
    def scored(self, spacecraft: str, channel: str, count: int, latency_s: float) -> None: ...
    def unscored(self, spacecraft: str, channel: str, reason: str, count: int) -> None: ...
    def channel_latest(self, spacecraft: str, channel: str, latest: Mapping[str, float]) -> None: ...
    def anomaly_opened(self, spacecraft: str, channel: str, subsystem: str, severity: str) -> None: ...
    def alarm_cleared(self, spacecraft: str, channel: str) -> None: ...
    def alarm_restored(self, spacecraft: str, channel: str, in_alarm: bool) -> None: ...
    def inference_switched(self, spacecraft: str, channel: str, reason: str) -> None: ...
    def dead_letter(self, reason: str) -> None: ...
    def snapshot_written(self) -> None: ...
    def snapshot_rejected(self, reason: str) -> None: ...
    def assigned(self, partitions: int) -> None: ...
    def lag(self, partition: Partition, messages: int) -> None: ...
    def channel_forgotten(self, spacecraft: str, channel: str) -> None: ...
    def partition_forgotten(self, partition: Partition) -> None: ...
