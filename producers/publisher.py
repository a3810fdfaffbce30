"""``TelemetryPublisher``: telemetry points onto their channel topics, every delivery accounted for.

The hot path avoids per-point objects: each channel's topic, key, partition and message prefix are
resolved once, a chunk of points is formatted straight into bytes by the one telemetry encoder
(``producers.messages.encode_points``) and handed to the Kafka client in one call
(``producers.clients``: kafka-python by default, confluent-kafka when ``kafka.producer_client``
says so), whose delivery reports bump integers. The partition is the one Kafka's default
partitioner picks for the channel key (murmur2), so keyed consumers see the same layout whichever
client sent it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType

import numpy as np
from kafka.partitioner.default import murmur2

from producers.clients import ProducerTuning, default_compression, open_client
from producers.exceptions import MessageError, MessageReason, PublishError
from producers.messages import (
    FLOAT32_LIMIT,
    encode_points,
    message_prefix,
    non_finite_detail,
    out_of_range_detail,
)
from producers.metrics import PRODUCER_METRICS, ChannelDelivery, PublisherStats
from producers.registry import ChannelRegistry
from tmstream.ground.settings import Settings
from tmstream.ground.topics import ConnectPolicy

log = logging.getLogger(__name__)
RowsLike = np.ndarray | Sequence[Sequence[float]]


@dataclass(frozen=True)
class RejectedRow:
    channel: str
    index: int
    reason: MessageReason
    detail: str


@dataclass(frozen=True)
class _Route:
    topic: str
    key: bytes
    partition: int
    prefix: bytes
    features: int
    delivery: ChannelDelivery


class TelemetryPublisher:
    """Publishes points of registered channels; use as a context manager (flushes, then closes)."""

    def __init__(
        self,
        settings: Settings,
        registry: ChannelRegistry,
        *,
        tuning: ProducerTuning = ProducerTuning(),
        connect: ConnectPolicy = ConnectPolicy(),
        client_id: str = "tmstream-producer",
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.tuning = tuning
        self.compression = tuning.compression or default_compression()
        self.client_name = settings.kafka.producer_client
        self.stats = PublisherStats()
        self._routes: dict[str, _Route] = {}
        self._partitions: dict[str, list[int]] = {}  # by topic: confluent-kafka asks the broker each time
        self._closed = False
        self._client = open_client(settings, tuning, self.compression, connect, client_id)
        PRODUCER_METRICS.track(self.stats)

    def __enter__(self) -> TelemetryPublisher:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.close(flush_first=not isinstance(exc, PublishError))

    def publish(
        self, channel: str, index: int, values: Sequence[float], event_time_ms: int | None = None
    ) -> None:
        """Send one point; a NaN/inf value or a wrong width raises ``MessageError`` (nothing sent)."""
        rejected = self.publish_batch(channel, index, [list(values)], event_time_ms)
        if rejected:
            raise MessageError(rejected[0].reason, f"{channel} index {index}: {rejected[0].detail}")

    def publish_batch(
        self, channel: str, start_index: int, rows: RowsLike, event_time_ms: int | None = None
    ) -> list[RejectedRow]:
        """Send consecutive points ``start_index, start_index+1, …``; bad rows are skipped and returned.

        ``event_time_ms`` defaults to the wall clock now, shared by the whole batch.
        """
        route = self._route(channel)
        lists, rejected = check_rows(channel, start_index, rows, route.features)
        if rejected:
            route.delivery.rejected += len(rejected)
        self._wait_for_room()
        now = int(time.time() * 1000) if event_time_ms is None else event_time_ms
        payloads = encode_points(route.prefix, start_index, now, lists)
        if rejected:
            skip = {row.index - start_index for row in rejected}
            payloads = [payload for i, payload in enumerate(payloads) if i not in skip]
        try:
            self._client.send(route.topic, route.partition, route.key, payloads, now, route.delivery)
        except PublishError as exc:
            raise PublishError(f"{channel}: {exc}") from exc
        return rejected

    def prepare(self, channels: Sequence[str]) -> None:
        """Resolve the channels' topics concurrently (one metadata round trip each would add up),
        each topic once however many channels share it, then their routes."""
        topics = [
            t
            for t in dict.fromkeys(self.registry.get(c).topic for c in channels)
            if t not in self._partitions
        ]
        with ThreadPoolExecutor(max_workers=min(32, max(1, len(topics)))) as pool:
            found = dict(zip(topics, pool.map(self._resolve_topic, topics), strict=True))
        self._partitions.update(found)
        for channel in channels:
            self._route(channel)

    def set_lag(self, channel: str, rows_left: int) -> None:
        self.stats.lag[channel] = rows_left

    def in_flight(self) -> int:
        return self._client.handed - self.stats.sent - self.stats.errors

    def flush(self, timeout_s: float | None = None) -> None:
        """Wait for every point handed over so far; failed deliveries raise ``PublishError``."""
        if not self._client.flush(timeout_s):
            raise PublishError(f"{self.in_flight()} points still unacknowledged after {timeout_s} s")
        self.raise_on_failures()

    def raise_on_failures(self) -> None:
        failed = {d.channel: d for d in self.stats.channels.values() if d.errors}
        if failed:
            first = next(iter(failed.values()))
            raise PublishError(
                f"{sum(d.errors for d in failed.values())} points were not delivered "
                f"({', '.join(f'{name}: {d.errors}' for name, d in failed.items())}); "
                f"first failure on {first.channel}: {first.first_error}"
            )

    def close(self, flush_first: bool = True) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if flush_first:
                self.flush()
        finally:
            self._client.close(5 if flush_first else 0)

    def _route(self, channel: str) -> _Route:
        route = self._routes.get(channel)
        if route is None:
            spec = self.registry.get(channel)
            key = channel.encode()
            partitions = self._partitions.get(spec.topic)
            if partitions is None:
                try:
                    partitions = self._partitions[spec.topic] = self._resolve_topic(spec.topic)
                except PublishError as exc:
                    raise PublishError(f"channel {channel}: {exc}") from exc
            partition = partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]
            route = _Route(
                spec.topic, key, partition, message_prefix(channel, spec.spacecraft), spec.features,
                self.stats.channel(channel),
            )  # fmt: skip
            self._routes[channel] = route
        return route

    def _resolve_topic(self, topic: str) -> list[int]:
        partitions = self._client.partitions(topic)
        if not partitions:
            raise PublishError(f"topic {topic} has no partitions")
        return partitions

    def _wait_for_room(self) -> None:
        """Backpressure: kafka-python's buffer is unbounded and librdkafka's refuses records when
        full, so cap the unacknowledged points."""
        while self.in_flight() > self.tuning.max_in_flight_points:
            self._client.wait(0.005)


def check_rows(
    channel: str, start_index: int, rows: RowsLike, features: int
) -> tuple[np.ndarray | list[list[float]], list[RejectedRow]]:
    """The rows as ``encode_points`` takes them (an array as a contiguous float64 array, anything
    else as lists of floats) plus the rejected ones (wrong width, NaN/inf, past float32),
    vectorised for arrays."""
    if isinstance(rows, np.ndarray) and rows.ndim == 2:
        return _checked_array(channel, start_index, rows, features)
    lists = [list(map(float, row)) for row in rows]
    rejected: list[RejectedRow] = []
    for index, values in enumerate(lists, start_index):
        if len(values) != features:
            rejected.append(
                RejectedRow(channel, index, "wrong_width", f"{len(values)} values, expected {features}")
            )
        elif (detail := non_finite_detail(values)) is not None:
            rejected.append(RejectedRow(channel, index, "nan_or_inf", detail))
        elif (detail := out_of_range_detail(values)) is not None:
            rejected.append(RejectedRow(channel, index, "out_of_range", detail))
    return lists, rejected


def _checked_array(
    channel: str, start_index: int, rows: np.ndarray, features: int
) -> tuple[np.ndarray, list[RejectedRow]]:
    rows = np.ascontiguousarray(rows, dtype=np.float64)  # floats on the wire, as the model has them
    if rows.shape[1] != features:
        detail = f"{rows.shape[1]} values, expected {features}"
        wrong = [RejectedRow(channel, start_index + i, "wrong_width", detail) for i in range(len(rows))]
        return rows[:0], wrong
    with np.errstate(invalid="ignore"):
        bad = np.flatnonzero(~(np.abs(rows) < FLOAT32_LIMIT).all(axis=1))  # NaN compares False
    rejected = []
    for i in bad:
        values = rows[i].tolist()
        if (non_finite := non_finite_detail(values)) is not None:
            rejected.append(RejectedRow(channel, start_index + int(i), "nan_or_inf", non_finite))
        else:
            beyond = out_of_range_detail(values) or ""
            rejected.append(RejectedRow(channel, start_index + int(i), "out_of_range", beyond))
    return rows, rejected
