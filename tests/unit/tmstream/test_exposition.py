"""Reading /metrics pages with prometheus_client's parser (tmstream.ground.exposition)."""

from __future__ import annotations

import socket

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server

from tmstream.ground.exposition import parse_samples, sample_sum, scrape_samples


def page() -> CollectorRegistry:
    registry = CollectorRegistry()
    scored = Counter("tmstream_points_scored", "points", ("channel",), registry=registry)
    scored.labels("P-1").inc(7)
    scored.labels("XP-1").inc(100)
    scored.labels("D-14").inc(3)
    Gauge("tmstream_assigned_partitions", "partitions", registry=registry).set(2)
    latency = Histogram("tmstream_scoring_seconds", "latency", buckets=(0.1, 1.0), registry=registry)
    latency.observe(0.05)
    latency.observe(0.5)
    return registry


def test_sums_samples_by_name_and_labels() -> None:
    samples = parse_samples(generate_latest(page()).decode())
    assert sample_sum(samples, "tmstream_points_scored_total") == 110
    assert sample_sum(samples, "tmstream_points_scored_total", channel="P-1") == 7, "labels match exactly"
    assert sample_sum(samples, "tmstream_points_scored_total", channel="A-1") == 0
    assert sample_sum(samples, "tmstream_assigned_partitions") == 2
    assert sample_sum(samples, "tmstream_scoring_seconds_count") == 2
    assert sample_sum(samples, "tmstream_scoring_seconds_bucket", le="1.0") == 2
    assert sample_sum(samples, "tmstream_points_scored") == 0, "the family name is no sample name"


def test_scrapes_a_metrics_endpoint() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server, thread = start_http_server(port, "127.0.0.1", registry=page())
    try:
        samples = scrape_samples(f"http://127.0.0.1:{port}/metrics")
    finally:
        server.shutdown()
        thread.join(5)
    assert sample_sum(samples, "tmstream_points_scored_total", channel="D-14") == 3
