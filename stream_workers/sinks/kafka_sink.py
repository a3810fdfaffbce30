"""The ``anomalies`` topic, de-duplicated at the producer side.

Kafka gives at-least-once delivery, so a restarted or rebalanced worker re-derives events it may
already have sent. The topic itself is the persisted record of what was emitted: each record
carries its emission key in a header, the worker reads those keys back before it takes over a
channel, and sends only emissions not yet on the topic.

What it keeps is bounded: an anomaly's emissions only move forward (open, then updated as it
grows, then closed), so one entry per anomaly — its latest emission — tells every re-derived
emission apart from a new one. A closed anomaly is needed only while a successor could re-derive
it: one that resumes from a channel's snapshot re-derives only what is evaluated after it, and an
anomaly is closed within a threshold batch of its end row, so closed anomalies ending a margin
before the snapshot's row go (``forget_closed``); ``max_closed`` caps them besides (oldest first). The
read-back starts where the successor's snapshots do (``load(since_ms)``), not at the start of the
topic's seven days.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from stream_workers.events import AnomalyEvent
from stream_workers.metrics import WorkerMetrics
from stream_workers.ports import RecordSender, TopicReader

EMISSION_HEADER = "emission_key"
EPOCH_HEADER = "stream_epoch"  # so the read-back knows it without decoding the event
STATUS_RANK = {"open": 0, "updated": 1, "closed": 2}
Progress = tuple[int, int]  # (status rank, end index) of an anomaly's latest emission


def _progress(status: str, end_index: int) -> Progress:
    return STATUS_RANK[status], end_index


class AnomalyTopicSink:
    def __init__(
        self,
        topic: str,
        sender: RecordSender,
        reader: TopicReader,
        metrics: WorkerMetrics,
        max_closed: int = 50_000,
    ) -> None:
        self.topic = topic
        self.sender = sender
        self.reader = reader
        self.metrics = metrics
        self.max_closed = max_closed
        self.open: dict[str, Progress] = {}  # event id -> its latest emission
        self.closed: OrderedDict[str, str] = OrderedDict()  # closed event id -> channel, oldest first
        self.closed_of: dict[str, dict[str, tuple[int, int]]] = {}  # channel -> event id -> (epoch, end)

    def __len__(self) -> int:
        return len(self.open) + len(self.closed)

    def _count(self) -> None:
        self.metrics.dedup_entries.labels("open").set(len(self.open))
        self.metrics.dedup_entries.labels("closed").set(len(self.closed))

    def forget_closed(self, channel: str, before_row: int, epoch: int = 0) -> None:
        """Forget ``channel``'s closed anomalies that end before ``before_row`` of stream ``epoch``,
        and those of earlier epochs: a successor cannot re-derive them any more (the caller's
        snapshot is past their closing)."""
        ended = self.closed_of.get(channel, {})
        for event_id in [e for e, at in ended.items() if at < (epoch, before_row)]:
            del ended[event_id]
            self.closed.pop(event_id, None)
        self._count()

    def load(self, since_ms: int | None = None, each: Callable[[bytes], None] | None = None) -> int:
        """Read the emissions already on the topic (blocking; run it off the event loop), from
        ``since_ms`` on (None: all of it), handing each value to ``each``; how many anomalies are
        known."""
        for record in self.reader.read_topic(self.topic, since_ms):
            if each is not None and record.value is not None:
                each(record.value)
            channel = (record.key or b"").decode(errors="replace")
            headers = dict(record.headers)
            epoch = headers.get(EPOCH_HEADER, b"0")
            key = headers.get(EMISSION_HEADER)
            if key is not None:
                event_id, status, end = key.decode(errors="replace").rsplit(":", 2)
                if status in STATUS_RANK and end.isdigit() and epoch.isdigit():
                    self._remember(event_id, channel, int(epoch), _progress(status, int(end)))
        self._count()
        return len(self)

    def _known(self, event: AnomalyEvent) -> bool:
        if event.event_id in self.closed:
            return True
        known = self.open.get(event.event_id)
        return known is not None and _progress(event.status, event.end_index) <= known

    def _remember(self, event_id: str, channel: str, epoch: int, progress: Progress) -> None:
        if event_id in self.closed:
            return
        if progress[0] == STATUS_RANK["closed"]:
            self.open.pop(event_id, None)
            self.closed[event_id] = channel
            self.closed_of.setdefault(channel, {})[event_id] = (epoch, progress[1])
            while len(self.closed) > self.max_closed:
                oldest, of = self.closed.popitem(last=False)
                self.closed_of.get(of, {}).pop(oldest, None)
        elif progress > self.open.get(event_id, (-1, -1)):
            self.open[event_id] = progress

    async def emit(self, event: AnomalyEvent) -> bool:
        """Send one emission unless it or a later one of its anomaly is on the topic; waits for
        the broker's ack."""
        if self._known(event):
            return False
        headers = {
            EMISSION_HEADER: event.emission_key.encode(),
            EPOCH_HEADER: str(event.stream_epoch).encode(),
        }
        await (await self.sender.send(self.topic, event.channel.encode(), event.to_bytes(), headers))
        self._remember(
            event.event_id, event.channel, event.stream_epoch, _progress(event.status, event.end_index)
        )
        self.metrics.events_emitted.labels("kafka", event.status).inc()
        self._count()
        return True
