"""Delivery accounting and the producer's /metrics page, without a broker."""

from __future__ import annotations

from typing import Any

import pytest

import producers.metrics as metrics_module
from producers.clients import librdkafka_options
from producers.metrics import PublisherStats, ThrottledMetricsApp
from tmstream.ground.settings import load_settings


class _Metadata:
    serialized_key_size = 3
    serialized_value_size = 100


class _LibrdkafkaError:
    def name(self) -> str:
        return "_MSG_TIMED_OUT"

    def str(self) -> str:
        return "Local: Message timed out"


class _Message:
    def __len__(self) -> int:
        return 100


def test_totals_follow_every_channel_whichever_client_reports() -> None:
    stats = PublisherStats()
    p1, d14 = stats.channel("P-1"), stats.channel("D-14")
    p1.ok(_Metadata())
    p1.report(None, _Message())
    d14.failed(TimeoutError("no ack"))
    d14.report(_LibrdkafkaError(), _Message())
    assert (stats.sent, stats.errors) == (2, 2)
    assert (p1.sent, p1.bytes_acked) == (2, 206), "librdkafka's report counts the key (P-1) too"
    assert d14.errors == 2 and d14.first_error == "TimeoutError: no ack"
    assert stats.sent == sum(d.sent for d in stats.channels.values())


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


def test_the_metrics_page_is_rendered_at_most_once_per_ten_times_its_cost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = _Clock()
    monkeypatch.setattr(metrics_module, "time", clock)
    renders: list[str] = []

    def slow_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        clock.now += 0.5  # a page of 10,000 channels
        renders.append(environ.get("HTTP_ACCEPT", ""))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"page {len(renders)}".encode()]

    app = ThrottledMetricsApp(slow_app)
    replies: list[tuple[str, list[tuple[str, str]]]] = []

    def scrape(accept: str = "text/plain") -> bytes:
        return b"".join(app({"PATH_INFO": "/metrics", "HTTP_ACCEPT": accept}, lambda *r: replies.append(r)))

    assert scrape() == b"page 1"
    clock.now += 4.0
    assert scrape() == b"page 1", "within 10 x 0.5 s of the render: the same page"
    assert scrape("application/openmetrics-text") == b"page 2", "another format is its own page"
    clock.now += 1.0
    assert scrape() == b"page 3"
    assert replies[0] == ("200 OK", [("Content-Type", "text/plain")])


def test_librdkafka_gets_the_security_settings_in_its_own_names() -> None:
    settings = load_settings(
        {
            "environment": "testing",
            "kafka": {
                "bootstrap": "broker:9093",
                "security_protocol": "SASL_SSL",
                "username": "producer",
                "password": "secret",
                "ssl_cafile": "/ca.pem",
            },
        }
    )
    assert librdkafka_options(settings) == {
        "bootstrap.servers": "broker:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "producer",
        "sasl.password": "secret",
        "ssl.ca.location": "/ca.pem",
    }
