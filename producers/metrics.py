"""Producer metrics for Prometheus, read from the publishers' delivery counts at scrape time.

Delivery callbacks run once per point (on kafka-python's sender thread, or in librdkafka's
``poll``), so they only bump plain integers; this collector turns them into ``tmstream_producer_*``
families when scraped. The page is rendered at most once per ten times its own rendering cost: at
10,000 channels it holds 40,000 series (0.4 s of CPU), and a 1 s scrape interval made rendering it
the replay's main load.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import make_wsgi_app
from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import Collector

from tmstream.ground.scrape_targets import register_scrape_target, unregister_scrape_target
from tmstream.ground.settings import Settings


class DeliveryTotals:
    """A publisher's acknowledged and failed points, kept beside the per-channel counts so the
    backpressure check is O(1): summing 10,000 channels before every chunk made the replay
    quadratic in the channel count."""

    __slots__ = ("errors", "sent")

    def __init__(self) -> None:
        self.sent = 0
        self.errors = 0


class ChannelDelivery:
    """Per-channel delivery report sink: ``ok``/``failed`` are kafka-python's future callbacks,
    ``report`` is librdkafka's delivery callback."""

    __slots__ = ("bytes_acked", "channel", "errors", "first_error", "key_bytes", "rejected", "sent", "totals")

    def __init__(self, channel: str, totals: DeliveryTotals) -> None:
        self.channel = channel
        self.totals = totals
        self.key_bytes = len(channel.encode())  # the record key is the channel id
        self.sent = 0
        self.errors = 0
        self.bytes_acked = 0
        self.rejected = 0
        self.first_error: str | None = None

    def ok(self, metadata: Any) -> None:
        self.sent += 1
        self.totals.sent += 1
        self.bytes_acked += metadata.serialized_value_size + metadata.serialized_key_size

    def failed(self, exc: BaseException) -> None:
        self.errors += 1
        self.totals.errors += 1
        if self.first_error is None:
            self.first_error = f"{type(exc).__name__}: {exc}"

    def report(self, error: Any, message: Any) -> None:
        if error is None:
            self.sent += 1
            self.totals.sent += 1
            self.bytes_acked += len(message) + self.key_bytes
        else:
            self.errors += 1
            self.totals.errors += 1
            if self.first_error is None:
                self.first_error = f"{error.name()}: {error.str()}"


@dataclass
class PublisherStats:
    """All channels of one publisher, plus the lag (rows left behind the source) set by the caller."""

    channels: dict[str, ChannelDelivery] = field(default_factory=dict)
    lag: dict[str, int] = field(default_factory=dict)
    totals: DeliveryTotals = field(default_factory=DeliveryTotals)

    def channel(self, name: str) -> ChannelDelivery:
        delivery = self.channels.get(name)
        if delivery is None:
            delivery = self.channels[name] = ChannelDelivery(name, self.totals)
        return delivery

    @property
    def sent(self) -> int:
        return self.totals.sent

    @property
    def errors(self) -> int:
        return self.totals.errors

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


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
RENDER_SHARE = 0.1  # at most this share of a core goes to rendering /metrics, whatever the scrape rate


@dataclass(frozen=True)
class _Page:
    status: str
    headers: list[tuple[str, str]]
    body: bytes
    fresh_until: float


class ThrottledMetricsApp:
    """prometheus_client's WSGI app, re-rendered only when the last page is older than its
    rendering cost divided by ``RENDER_SHARE``; meanwhile scrapes get that page again."""

    def __init__(self, app: WsgiApp, share: float = RENDER_SHARE) -> None:
        self._app = app
        self._share = share
        self._pages: dict[tuple[str, ...], _Page] = {}
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        request = ("PATH_INFO", "QUERY_STRING", "HTTP_ACCEPT", "HTTP_ACCEPT_ENCODING")
        key = tuple(str(environ.get(name, "")) for name in request)
        with self._lock:  # one render at a time: concurrent scrapes wait for it and share it
            page = self._pages.get(key)
            if page is None or time.monotonic() >= page.fresh_until:
                page = self._pages[key] = self._render(environ)
        start_response(page.status, page.headers)
        return [page.body]

    def _render(self, environ: dict[str, Any]) -> _Page:
        started = time.monotonic()
        reply: list[Any] = []
        body = b"".join(self._app(environ, lambda *response: reply.extend(response[:2])))
        finished = time.monotonic()
        return _Page(reply[0], list(reply[1]), body, finished + (finished - started) / self._share)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log on stderr."""


def serve_metrics(host: str, port: int) -> tuple[ThreadingWSGIServer, threading.Thread]:
    """The process's registry on ``http://host:port/metrics`` (any path), throttled, in a daemon thread."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, address = found[0]

    class Server(ThreadingWSGIServer):
        address_family = family

    app = ThrottledMetricsApp(make_wsgi_app(REGISTRY))
    server = make_server(str(address[0]), port, app, Server, _QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="producer-metrics", daemon=True)
    thread.start()
    return server, thread


@contextmanager
def metrics_endpoint(settings: Settings, instance: str, port: int = 0) -> Iterator[str]:
    """Serve ``/metrics`` (port 0: any free port) and announce it to Prometheus while in use."""
    host = settings.worker.metrics_host
    server, thread = serve_metrics(host, port)
    address = f"{host}:{server.server_port}"
    target = register_scrape_target(settings, "producer", instance, address)
    try:
        yield address
    finally:
        unregister_scrape_target(target)
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
