"""The ``anomalies`` topic, de-duplicated at the producer side.

Kafka gives at-least-once delivery, so a restarted or rebalanced worker re-derives events it may
already have sent. The topic itself is the persisted record of what was emitted: each record
carries its emission key in a header, the worker reads those keys back before it takes over a
channel, and sends only emissions not yet on the topic.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from stream_workers.events import AnomalyEvent
from stream_workers.metrics import WorkerMetrics
from tmstream.ground.settings import Settings
from tmstream.ground.topic_reader import read_topic

EMISSION_HEADER = "emission_key"
Send = Callable[[bytes, bytes, dict[str, bytes]], Awaitable[object]]


class AnomalyTopicSink:
    def __init__(self, settings: Settings, metrics: WorkerMetrics) -> None:
        self.settings = settings
        self.topic = settings.kafka.anomalies_topic
        self.metrics = metrics
        self.emitted: set[str] = set()

    def load(self) -> int:
        """Read the emission keys already on the topic (blocking; run it in an executor)."""
        for record in read_topic(self.settings, self.topic):
            for name, value in record.headers or []:
                if name == EMISSION_HEADER:
                    self.emitted.add(value.decode())
        return len(self.emitted)

    async def emit(self, event: AnomalyEvent, send: Send) -> bool:
        """Send one emission unless it is already on the topic; waits for the broker's ack."""
        key = event.emission_key
        if key in self.emitted:
            return False
        await send(event.channel.encode(), event.to_bytes(), {EMISSION_HEADER: key.encode()})
        self.emitted.add(key)
        self.metrics.events_emitted.labels("kafka", event.status).inc()
        return True
