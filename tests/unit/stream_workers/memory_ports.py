"""In-memory ports for the worker core's unit tests: a log of topics, an idempotent event sink.

Not a fake Kafka for the system's claims (the integration and fault suites use the real broker):
just enough of a partitioned log to drive the core's protocol deterministically.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from stream_workers.events import AnomalyEvent
from stream_workers.ports import ChannelState, Partition, RecordRef


def acked() -> Awaitable[object]:
    future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future


@dataclass
class MemoryLog:
    """Topics of partitions of records; offsets start at 0 in each partition."""

    partitions: dict[Partition, list[RecordRef]] = field(default_factory=lambda: defaultdict(list))
    clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)

    def append(self, topic: str, key: bytes | None, value: bytes | None, partition: int = 0,
               headers: Mapping[str, bytes] | None = None) -> RecordRef:  # fmt: skip
        log = self.partitions[Partition(topic, partition)]
        record = RecordRef(
            topic, partition, len(log), key, value, tuple((headers or {}).items()), self.clock_ms()
        )
        log.append(record)
        return record

    async def send(
        self, topic: str, key: bytes | None, value: bytes, headers: Mapping[str, bytes] | None = None
    ) -> Awaitable[object]:
        self.append(topic, key, value, headers=headers)
        return acked()

    def read_range(self, partition: Partition, start: int, stop: int) -> list[RecordRef]:
        return self.partitions[partition][max(start, 0) : stop]

    def read_topic(self, topic: str, since_ms: int | None = None) -> Iterable[RecordRef]:
        since = -1 if since_ms is None else since_ms
        return [
            r for tp, log in list(self.partitions.items()) if tp.topic == topic for r in log
            if r.timestamp_ms >= since
        ]  # fmt: skip

    def end_offset(self, partition: Partition) -> int:
        return len(self.partitions[partition])

    def records(self, topic: str) -> list[RecordRef]:
        return list(self.read_topic(topic))

    def highwater(self, partition: Partition) -> int:
        return len(self.partitions[partition])


@dataclass
class MemoryEventSink:
    """Idempotent by emission key, like the Redis sink's guard."""

    events: list[AnomalyEvent] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)
    states: dict[str, dict[str, str | float | int]] = field(default_factory=dict)

    async def emit(self, event: AnomalyEvent) -> bool:
        if event.emission_key in self.keys:
            return False
        self.keys.add(event.emission_key)
        self.events.append(event)
        return True

    async def update_channels(self, states: Iterable[tuple[str, ChannelState]]) -> None:
        for channel, state in states:
            self.states[channel] = dict(state)


@dataclass(frozen=True)
class TinyModel:
    """What the scorer reads of a model: its version and input shape."""

    version: str
    l_s: int
    n_features: int
    inference_mode: str = "windowed"  # never measured: the scorer's exact path
    verdict: None = None


class PreviousValuePredictor:
    """Predicts each row's value as the previous row's: deterministic, and spikes become errors."""

    def predict_series(self, weights: TinyModel, rows: np.ndarray) -> np.ndarray:
        return rows[weights.l_s - 1 : -1, 0].astype(np.float64)

    def predict_series_many(self, items: list[tuple[TinyModel, np.ndarray]]) -> list[np.ndarray]:
        return [self.predict_series(weights, rows) for weights, rows in items]
