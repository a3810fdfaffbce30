"""One channel's stream state: the last l_s rows, event times, and its threshold detector.

A ``ChannelStream`` turns accepted rows into scoring work (the rows a prediction needs) and
prediction results into detections. It is plain data with a compact snapshot, so a worker can
persist it and a successor can resume from it.

Rows are kept as float32 arrays (the engine's input type, so nothing is lost): about a quarter of
the memory of lists of Python floats, which is most of a channel's state, and one ``np.stack`` per
batch instead of converting a list of lists (docs/PERFORMANCE.md, "Scale").
"""

from __future__ import annotations

import json
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stream_workers.thresholding.parameters import ThresholdParameters
from stream_workers.thresholding.streaming import ChannelThresholdState, Detection

SNAPSHOT_VERSION = 1


class SnapshotError(ValueError):
    """A snapshot that cannot be restored (corrupt, truncated, another version)."""


@dataclass
class ScoringWork:
    """Rows ``first_index - l_s … last_index`` of one channel: the engine's ``predict_series`` of
    them predicts rows first…last (the last row is only a target, never an input)."""

    channel: str
    rows: np.ndarray
    first_index: int
    actuals: np.ndarray

    @property
    def count(self) -> int:
        return len(self.actuals)


@dataclass
class ChannelStream:
    channel: str
    spacecraft: str
    features: int
    params: ThresholdParameters
    model_version: str = ""
    next_index: int | None = None
    last_offset: int = -1
    history: list[np.ndarray] = field(default_factory=list)  # float32 rows: what the engine reads
    pending: int = 0
    times: deque[int] = field(default_factory=deque)
    first_time_index: int = 0
    threshold: ChannelThresholdState | None = None

    @property
    def time_capacity(self) -> int:
        return self.params.window_length + 2 * self.params.batch_size + self.params.l_s

    def append(self, index: int, values: list[float], event_time_ms: int, offset: int) -> None:
        """Add an accepted row (index == next_index, or the channel's first row)."""
        if self.next_index is None:
            self.first_time_index = index
        self.history.append(np.array(values, dtype=np.float32))
        if len(self.history) > self.params.l_s:
            self.pending += 1
        self.times.append(event_time_ms)
        if len(self.times) > self.time_capacity:
            self.times.popleft()
            self.first_time_index += 1
        self.next_index = index + 1
        self.last_offset = offset

    def take_work(self) -> ScoringWork | None:
        """The rows behind every pending row, handed to the engine; None when nothing is pending."""
        if self.pending == 0 or self.next_index is None:
            return None
        rows = np.stack(self.history)
        first_index = self.next_index - self.pending
        actuals = rows[-self.pending :, 0].astype(np.float64)
        work = ScoringWork(self.channel, rows, first_index, actuals)
        del self.history[: len(self.history) - self.params.l_s]
        self.pending = 0
        return work

    def detect(self, work: ScoringWork, predictions: np.ndarray, model_version: str) -> list[Detection]:
        """Feed predictions for ``work`` to the threshold detector; returns its detections."""
        if self.threshold is None or model_version != self.model_version:
            self.model_version = model_version
            if self.threshold is None:
                self.threshold = ChannelThresholdState(self.channel, model_version, self.params)
            else:
                self.threshold.model_version = model_version
        detections: list[Detection] = []
        for offset, (prediction, actual) in enumerate(zip(predictions, work.actuals, strict=True)):
            detections += self.threshold.update(work.first_index + offset, float(prediction), float(actual))
        return detections

    def time_of(self, index: int) -> int:
        """Event time of row ``index`` (the oldest kept time for rows already forgotten)."""
        position = min(max(index - self.first_time_index, 0), len(self.times) - 1)
        return self.times[position] if self.times else 0

    def snapshot(self) -> bytes:
        """Compressed JSON of everything needed to resume after ``last_offset``."""
        state: dict[str, Any] = {
            "version": SNAPSHOT_VERSION,
            "channel": self.channel,
            "spacecraft": self.spacecraft,
            "features": self.features,
            "model_version": self.model_version,
            "next_index": self.next_index,
            "last_offset": self.last_offset,
            "history": [row.tolist() for row in self.history],
            "pending": self.pending,
            "times": list(self.times),
            "first_time_index": self.first_time_index,
            "threshold": self.threshold.to_dict() if self.threshold else None,
        }
        return zlib.compress(json.dumps(state, separators=(",", ":")).encode(), 3)

    @classmethod
    def restore(cls, payload: bytes, params: ThresholdParameters) -> ChannelStream:
        """The stream a snapshot holds; ``SnapshotError`` when it cannot be read back."""
        try:
            state = json.loads(zlib.decompress(payload))
            version = state.pop("version")
            if version != SNAPSHOT_VERSION:
                raise SnapshotError(f"unsupported channel snapshot version {version!r}")
            threshold = state.pop("threshold")
            times = deque(state.pop("times"))
            state["history"] = [np.array(row, dtype=np.float32) for row in state["history"]]
            stream = cls(params=params, times=times, **state)
            stream.threshold = ChannelThresholdState.from_dict(threshold) if threshold else None
        except SnapshotError:
            raise
        except (zlib.error, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SnapshotError(f"unreadable channel snapshot: {type(exc).__name__}: {exc}") from exc
        return stream
