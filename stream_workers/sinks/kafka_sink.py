"""The ``anomalies`` topic, de-duplicated at the producer side.

Kafka gives at-least-once delivery, so a restarted or rebalanced worker re-derives events it may
already have sent. The topic itself is the persisted record of what was emitted: each record
carries its emission key in a header, the worker reads those keys back before it takes over a
channel, and sends only emissions not yet on the topic.
"""

from __future__ import annotations

from stream_workers.events import AnomalyEvent
from stream_workers.metrics import WorkerMetrics
from stream_workers.ports import RecordSender, TopicReader

EMISSION_HEADER = "emission_key"


class AnomalyTopicSink:
    def __init__(self, topic: str, sender: RecordSender, reader: TopicReader, metrics: WorkerMetrics) -> None:
        self.topic = topic
        self.sender = sender
        self.reader = reader
        self.metrics = metrics
        self.emitted: set[str] = set()

    def load(self) -> int:
        """Read the emission keys already on the topic (blocking; run it off the event loop)."""
        for record in self.reader.read_topic(self.topic):
            for name, value in record.headers:
                if name == EMISSION_HEADER:
                    self.emitted.add(value.decode())
        return len(self.emitted)

    async def emit(self, event: AnomalyEvent) -> bool:
        """Send one emission unless it is already on the topic; waits for the broker's ack."""
        key = event.emission_key
        if key in self.emitted:
            return False
        headers = {EMISSION_HEADER: key.encode()}
        await (await self.sender.send(self.topic, event.channel.encode(), event.to_bytes(), headers))
        self.emitted.add(key)
        self.metrics.events_emitted.labels("kafka", event.status).inc()
        return True
