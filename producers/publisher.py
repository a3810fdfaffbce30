"""``TelemetryPublisher``: telemetry points onto their channel topics, every delivery accounted for.

kafka-python is pure Python, so the hot path avoids per-point objects: each channel's topic, key,
partition and message prefix are resolved once, a chunk of points is formatted straight into bytes
by the one telemetry encoder (``producers.messages.encode_points``), and the delivery futures get
bound-method callbacks that bump integers. The partition is the one Kafka's default partitioner
picks for the channel key (murmur2), so keyed consumers see the same layout.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np
from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.partitioner.default import murmur2

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
from tmstream.ground.topics import ConnectPolicy, connect_with_retries

log = logging.getLogger(__name__)
RowsLike = np.ndarray | Sequence[Sequence[float]]


def default_compression() -> str:
    """lz4 when python-lz4 is installed (cheapest on CPU), gzip otherwise."""
    return "lz4" if importlib.util.find_spec("lz4") else "gzip"


@dataclass(frozen=True)
class ProducerTuning:
    """Batching knobs; the defaults reach the replay throughput target on a local broker."""

    linger_ms: int = 20
    batch_size: int = 512 * 1024
    compression: str | None = None
    delivery_timeout_ms: int = 30_000
    max_block_ms: int = 10_000
    max_in_flight_points: int = 200_000


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
        self.stats = PublisherStats()
        self._routes: dict[str, _Route] = {}
        self._handed = 0
        self._closed = False
        self._producer: KafkaProducer = connect_with_retries(
            settings,
            lambda timeout_ms: KafkaProducer(
                **settings.kafka.client_options(),
                client_id=client_id,
                acks="all",
                enable_idempotence=True,
                compression_type=None if self.compression == "none" else self.compression,
                linger_ms=tuning.linger_ms,
                batch_size=tuning.batch_size,
                max_request_size=max(tuning.batch_size * 2, 1_048_576),
                delivery_timeout_ms=tuning.delivery_timeout_ms,
                request_timeout_ms=min(tuning.delivery_timeout_ms - tuning.linger_ms, 30_000),
                max_block_ms=tuning.max_block_ms,
                bootstrap_timeout_ms=timeout_ms,
            ),
            connect,
            "producer",
        )
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
        send, topic, key, partition = self._producer.send, route.topic, route.key, route.partition
        ok, failed = route.delivery.ok, route.delivery.failed
        skip = {row.index for row in rejected}
        payloads = encode_points(route.prefix, start_index, now, lists)
        sent = 0
        try:
            for index, payload in enumerate(payloads, start_index):
                if skip and index in skip:
                    continue
                send(topic, value=payload, key=key, partition=partition, timestamp_ms=now).add_callback(
                    ok
                ).add_errback(failed)
                sent += 1
        except KafkaError as exc:
            raise PublishError(f"{channel}: sending to {topic} failed: {type(exc).__name__}: {exc}") from exc
        finally:
            self._handed += sent
        return rejected

    def prepare(self, channels: Sequence[str]) -> None:
        """Resolve the channels' topics concurrently: one metadata round trip each would add up."""
        with ThreadPoolExecutor(max_workers=min(32, max(1, len(channels)))) as pool:
            list(pool.map(self._route, channels))

    def set_lag(self, channel: str, rows_left: int) -> None:
        self.stats.lag[channel] = rows_left

    def in_flight(self) -> int:
        return self._handed - self.stats.sent - self.stats.errors

    def flush(self, timeout_s: float | None = None) -> None:
        """Wait for every point handed over so far; failed deliveries raise ``PublishError``."""
        try:
            self._producer.flush(timeout=timeout_s)
        except KafkaTimeoutError as exc:
            raise PublishError(
                f"{self.in_flight()} points still unacknowledged after {timeout_s} s: {exc}"
            ) from exc
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
            self._producer.close(timeout=5 if flush_first else 0)

    def _route(self, channel: str) -> _Route:
        route = self._routes.get(channel)
        if route is None:
            spec = self.registry.get(channel)
            key = channel.encode()
            try:
                partitions = sorted(self._producer.partitions_for(spec.topic) or ())
            except KafkaTimeoutError as exc:
                raise PublishError(
                    f"topic {spec.topic} of channel {channel} does not exist or has no leader "
                    "(run `tmstream topics create`)"
                ) from exc
            if not partitions:
                raise PublishError(f"topic {spec.topic} of channel {channel} has no partitions")
            partition = partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]
            route = _Route(
                spec.topic, key, partition, message_prefix(channel, spec.spacecraft), spec.features,
                self.stats.channel(channel),
            )  # fmt: skip
            self._routes[channel] = route
        return route

    def _wait_for_room(self) -> None:
        """Backpressure: kafka-python's buffer is unbounded, so cap the unacknowledged points."""
        while self.in_flight() > self.tuning.max_in_flight_points:
            time.sleep(0.005)


def check_rows(
    channel: str, start_index: int, rows: RowsLike, features: int
) -> tuple[list[Any], list[RejectedRow]]:
    """Rows as lists of floats plus the rejected ones (wrong width, NaN/inf, past float32),
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
) -> tuple[list[Any], list[RejectedRow]]:
    rows = rows.astype(np.float64, copy=False)  # floats on the wire, as ``TelemetryMessage`` has them
    if rows.shape[1] != features:
        detail = f"{rows.shape[1]} values, expected {features}"
        return [], [RejectedRow(channel, start_index + i, "wrong_width", detail) for i in range(len(rows))]
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
    return rows.tolist(), rejected
