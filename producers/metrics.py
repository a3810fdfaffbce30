"""Producer metrics for Prometheus, read from the publishers' delivery counts at scrape time.

Delivery callbacks run once per point on kafka-python's sender thread, so they only bump plain
integers; this collector turns them into ``tmstream_producer_*`` families when scraped.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import start_http_server
from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from tmstream.ground.scrape_targets import register_scrape_target, unregister_scrape_target
from tmstream.ground.settings import Settings


class ChannelDelivery:
    """Per-channel delivery report sink; ``ok``/``failed`` are the futures' callbacks."""

    __slots__ = ("bytes_acked", "channel", "errors", "first_error", "rejected", "sent")

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.sent = 0
        self.errors = 0
        self.bytes_acked = 0
        self.rejected = 0
        self.first_error: str | None = None

    def ok(self, metadata: Any) -> None:
        self.sent += 1
        self.bytes_acked += metadata.serialized_value_size + metadata.serialized_key_size

    def failed(self, exc: BaseException) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = f"{type(exc).__name__}: {exc}"


@dataclass
class PublisherStats:
    """All channels of one publisher, plus the lag (rows left behind the source) set by the caller."""

    channels: dict[str, ChannelDelivery] = field(default_factory=dict)
    lag: dict[str, int] = field(default_factory=dict)

    def channel(self, name: str) -> ChannelDelivery:
        delivery = self.channels.get(name)
        if delivery is None:
            delivery = self.channels[name] = ChannelDelivery(name)
        return delivery

    @property
    def sent(self) -> int:
        return sum(d.sent for d in list(self.channels.values()))

    @property
    def errors(self) -> int:
        return sum(d.errors for d in list(self.channels.values()))

    @property
    def bytes_acked(self) -> int:
        return sum(d.bytes_acked for d in list(self.channels.values()))


class ProducerCollector(Collector):
    """Sums every publisher of this process (counters stay monotonic when one is closed)."""

    def __init__(self) -> None:
        self._stats: list[PublisherStats] = []
        self._lock = threading.Lock()

    def track(self, stats: PublisherStats) -> None:
        with self._lock:
            self._stats.append(stats)

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        sent = CounterMetricFamily(
            "tmstream_producer_points_sent", "Points acknowledged by Kafka.", labels=["channel"]
        )
        errors = CounterMetricFamily(
            "tmstream_producer_send_errors", "Points whose delivery failed.", labels=["channel"]
        )
        rejected = CounterMetricFamily(
            "tmstream_producer_rows_rejected", "Rows not sent: NaN/inf or wrong width.", labels=["channel"]
        )
        sent_bytes = CounterMetricFamily(
            "tmstream_producer_bytes_sent", "Key and value bytes acknowledged by Kafka."
        )
        lag = GaugeMetricFamily(
            "tmstream_producer_channel_lag_points", "Source rows not yet sent.", labels=["channel"]
        )
        totals: dict[str, list[int]] = {}
        lags: dict[str, int] = {}
        total_bytes = 0
        with self._lock:
            tracked = list(self._stats)
        for stats in tracked:
            for name, delivery in list(stats.channels.items()):
                row = totals.setdefault(name, [0, 0, 0])
                row[0] += delivery.sent
                row[1] += delivery.errors
                row[2] += delivery.rejected
                total_bytes += delivery.bytes_acked
            lags.update(stats.lag)
        for name, (sent_count, error_count, rejected_count) in sorted(totals.items()):
            sent.add_metric([name], sent_count)
            errors.add_metric([name], error_count)
            rejected.add_metric([name], rejected_count)
        for name, value in sorted(lags.items()):
            lag.add_metric([name], value)
        sent_bytes.add_metric([], total_bytes)
        yield from (sent, errors, rejected, sent_bytes, lag)


PRODUCER_METRICS = ProducerCollector()
REGISTRY.register(PRODUCER_METRICS)


@contextmanager
def metrics_endpoint(settings: Settings, instance: str, port: int = 0) -> Iterator[str]:
    """Serve ``/metrics`` (port 0: any free port) and announce it to Prometheus while in use."""
    host = settings.worker.metrics_host
    server, thread = start_http_server(port, addr=host)
    address = f"{host}:{server.server_port}"
    target = register_scrape_target(settings, "producer", instance, address)
    try:
        yield address
    finally:
        unregister_scrape_target(target)
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
