"""An assignment against a seven-day ``anomalies`` history of 100,000 emissions (real broker).

What a worker reads back when partitions are assigned to it: before, the whole topic, every
assignment; now the emissions from its oldest channel snapshot on (``WorkerCore.assigned``), with
one entry per anomaly kept. Measured in one run, side by side, on a fresh topic whose records
carry timestamps spread over the last 6.9 days (inside the default 7-day retention):
- ``full_read_s``: ``AnomalyTopicSink.load()`` of the whole topic (a first start, a lost state topic);
- ``since_read_s``: ``load(since)`` from one hour ago, where snapshots written every 350 points put
  a running fleet's oldest snapshot (less the core's ten minutes for clock skew);
- the entries the sink keeps after each (open anomalies plus at most ``max_closed`` closed ones).
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from kafka import KafkaProducer
from kafka.admin import NewTopic
from prometheus_client import CollectorRegistry

from benchmarks._harness import load_average, testing_stack
from stream_workers.events import AnomalyEvent, event_id_for
from stream_workers.kafka_ports import KafkaTopicReader
from stream_workers.metrics import WorkerMetrics
from stream_workers.sinks.kafka_sink import EMISSION_HEADER, AnomalyTopicSink
from tmstream.ground.settings import Settings
from tmstream.ground.topics import admin_client

EMISSIONS = 100_000
SPAN_MS = int(6.9 * 24 * 3600 * 1000)
RECENT_MS = 3600 * 1000


def emission(n: int) -> AnomalyEvent:
    """Emission ``n``: anomalies of four emissions each (open, two updates, closed) on 82 channels."""
    anomaly, step = divmod(n, 4)
    status = ("open", "updated", "updated", "closed")[step]
    start = 10 * anomaly
    return AnomalyEvent(
        event_id=event_id_for(f"C-{anomaly % 82}", start, "1"),
        channel=f"C-{anomaly % 82}",
        spacecraft="SMAP",
        subsystem="other",
        start_index=start,
        end_index=start + 70 * (step + 1),
        start_time_ms=0,
        end_time_ms=0,
        score=1.0,
        severity="warning",
        threshold=0.1,
        max_error=0.2,
        direction="high",
        model_version="1",
        detected_at_ms=n,
        status=status,
        close_reason="ended" if status == "closed" else None,
    )


def fill(settings: Settings, topic: str, now_ms: int) -> float:
    with admin_client(settings) as admin:
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    producer = KafkaProducer(**settings.kafka.client_options(), linger_ms=20, batch_size=1_048_576)
    started = time.perf_counter()
    try:
        for n in range(EMISSIONS):
            event = emission(n)
            stamp = now_ms - SPAN_MS + SPAN_MS * n // EMISSIONS
            headers = [(EMISSION_HEADER, event.emission_key.encode())]
            producer.send(topic, event.to_bytes(), event.channel.encode(), headers, timestamp_ms=stamp)
        producer.flush(timeout=300)
    finally:
        producer.close()
    return time.perf_counter() - started


def load(settings: Settings, topic: str, since_ms: int | None) -> tuple[float, int]:
    metrics = WorkerMetrics.on(CollectorRegistry())
    sink = AnomalyTopicSink(topic, None, KafkaTopicReader(settings), metrics)  # type: ignore[arg-type]  # reads only
    started = time.perf_counter()
    sink.load(since_ms)
    return time.perf_counter() - started, len(sink)


def run() -> dict[str, Any]:
    with testing_stack() as settings:
        topic = f"bench.assignment.{uuid.uuid4().hex[:8]}"
        now_ms = int(time.time() * 1000)
        try:
            fill_s = fill(settings, topic, now_ms)
            before = load_average()
            full_s, full_kept = load(settings, topic, None)
            since_s, since_kept = load(settings, topic, now_ms - RECENT_MS)
            after = load_average()
        finally:
            with admin_client(settings) as admin:
                admin.delete_topics([topic])
    return {
        "emissions": EMISSIONS,
        "history_days": SPAN_MS / 86_400_000,
        "fill_s": round(fill_s, 1),
        "full_read_s": round(full_s, 2),
        "since_read_s": round(since_s, 3),
        "full_over_since": round(full_s / since_s, 1),
        "kept_after_full_read": full_kept,
        "kept_after_since_read": since_kept,
        "cpu_count": os.cpu_count(),
        "load_average_before": before,
        "load_average_after": after,
    }
