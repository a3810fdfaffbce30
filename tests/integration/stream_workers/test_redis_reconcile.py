"""Redis rebuilt from the ``anomalies`` topic: ``tmstream anomalies reconcile`` against the real
broker and Redis writes exactly the emissions Redis lacks, once."""

from __future__ import annotations

import asyncio
import json

from kafka import KafkaProducer
from prometheus_client import CollectorRegistry

from stream_workers.events import AnomalyEvent, event_id_for
from stream_workers.metrics import WorkerMetrics
from stream_workers.sinks.kafka_sink import EMISSION_HEADER
from stream_workers.sinks.redis_sink import RedisSink
from tests.anomaly_events import anomaly_event


def emissions(count: int) -> list[AnomalyEvent]:
    """Four anomalies of P-1: open, updated, closed each."""
    found = []
    for n in range(count):
        start = 100 * (n // 3)
        found.append(
            anomaly_event(
                event_id=event_id_for("P-1", start, "1"),
                start_index=start,
                end_index=start + 10 + n % 3,
                detected_at_ms=n,
                status=("open", "updated", "closed")[n % 3],
            )
        )
    return found


def test_reconcile_writes_what_redis_lacks_once(pipeline) -> None:
    settings = pipeline.settings
    events = emissions(12)
    created = pipeline.tmstream("topics", "create")  # the anomalies topic, as a worker creates it
    assert created.returncode == 0, created.stderr
    producer = KafkaProducer(**settings.kafka.client_options(), acks="all")
    try:
        for event in events:
            headers = [(EMISSION_HEADER, event.emission_key.encode())]
            producer.send(settings.kafka.anomalies_topic, event.to_bytes(), event.channel.encode(), headers)
        producer.send(settings.kafka.anomalies_topic, b'{"not": "an event"}')
        producer.flush(timeout=60)
    finally:
        producer.close()

    async def write_some() -> None:  # a worker wrote these before it was killed
        sink = RedisSink(settings, WorkerMetrics.on(CollectorRegistry()))
        try:
            for event in events[:4]:
                await sink.emit(event)
            await asyncio.wait_for(sink.flush(), timeout=30)
        finally:
            await sink.close()

    asyncio.run(write_some())
    first = pipeline.tmstream("anomalies", "reconcile", "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) | {"topic": ""} == {
        "topic": "",
        "emissions": 12,
        "written": 8,
        "not_events": 1,
    }
    stored = [(e["event_id"], e["status"], e["end_index"]) for e in pipeline.redis_events()]
    assert sorted(stored) == sorted((e.event_id, e.status, e.end_index) for e in events)
    again = pipeline.tmstream("anomalies", "reconcile", "--json")
    assert json.loads(again.stdout)["written"] == 0
    assert len(pipeline.redis_events()) == 12
