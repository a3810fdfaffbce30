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
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from stream_workers.thresholding.parameters import ThresholdParameters
from stream_workers.thresholding.streaming import ChannelThresholdState, Detection

SNAPSHOT_VERSION = 3
# version 2 had no carried LSTM state: such a snapshot restores with none (rebuilt from its rows)
READABLE_SNAPSHOT_VERSIONS = (2, 3)
# A snapshot holds l_s rows, a few thousand times and errors: tens of kB. Far more than this is
# not one of ours (and a zlib bomb must not take the worker's memory).
MAX_SNAPSHOT_BYTES = 16 * 1024 * 1024
RejectReason = Literal["corrupt", "too_large", "version", "wrong_channel", "params_changed", "implausible"]


class SnapshotError(ValueError):
    """A snapshot that cannot be restored; ``reason`` names the check it failed (a metric label)."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason: RejectReason = reason


class RowBuffer:
    """A channel's kept rows in one float32 array that fills towards its end.

    A micro-batch's rows are then one slice (copied once), not a stack of per-row arrays: the
    stack of 250 rows cost ≈190 µs per channel and micro-batch (``bench overheads``), as much as
    a dozen stateful steps. Room is made by moving the kept rows to the front, growing only when
    more than half of the array is kept (a channel whose rows wait for the registry).
    """

    def __init__(
        self, features: int, rows: Iterable[Sequence[float] | np.ndarray] = (), room: int = 320
    ) -> None:
        self.data = np.empty((room, features), np.float32)
        self.start = self.stop = 0
        self.room = room
        for row in rows:
            self.append(row)

    def __len__(self) -> int:
        return self.stop - self.start

    def append(self, values: Sequence[float] | np.ndarray) -> None:
        if self.stop == len(self.data):
            self._make_room()
        self.data[self.stop] = values  # rounded to float32 as np.array(values, float32) rounds
        self.stop += 1

    def rows(self) -> np.ndarray:
        """The kept rows, oldest first (a view: copy what outlives the next append)."""
        return self.data[self.start : self.stop]

    def keep_last(self, count: int) -> None:
        self.start = max(self.start, self.stop - count)
        if len(self.data) > 4 * self.room and len(self) <= self.room // 2:  # a held backlog is gone
            self.data, self.start, self.stop = self._moved(self.room), 0, len(self)

    def _make_room(self) -> None:
        size = len(self.data) if 2 * len(self) <= len(self.data) else 2 * len(self.data)
        self.data, self.start, self.stop = self._moved(size), 0, len(self)

    def _moved(self, size: int) -> np.ndarray:
        target = self.data if size == len(self.data) else np.empty((size, self.data.shape[1]), np.float32)
        target[: len(self)] = self.data[self.start : self.stop]
        return target


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
    # the last record taken, by topic, partition and offset: offsets are only comparable within
    # one partition (a partition-count increase or a topic override moves a channel)
    topic: str = ""
    partition: int = -1
    last_offset: int = -1
    epoch: int = 0  # how many times the source restarted its index (part of the event ids)
    history: RowBuffer = field(default=None)  # type: ignore[assignment]  # float32 rows: what the engine reads
    pending: int = 0
    times: deque[int] = field(default_factory=deque)
    first_time_index: int = 0
    threshold: ChannelThresholdState | None = None
    # stateful inference: every LSTM layer's (h, c) after the rows before ``carry_next``, under
    # model version ``carry_version`` (float32, (2, units)); None for windowed channels
    carry: np.ndarray | None = None
    carry_next: int = -1
    carry_version: str = ""
    # the online guard found the carried state off at this row: windows for this model version
    switched_at: int | None = None
    switched_version: str = ""

    def __post_init__(self) -> None:
        if self.history is None:
            self.history = RowBuffer(self.features, room=self.params.l_s + 70)

    @property
    def time_capacity(self) -> int:
        return self.params.window_length + 2 * self.params.batch_size + self.params.l_s

    def is_redelivery(self, topic: str, partition: int, offset: int) -> bool:
        """A record at or before the last one taken from the same partition."""
        return (topic, partition) == (self.topic, self.partition) and offset <= self.last_offset

    def take_position(self, topic: str, partition: int, offset: int) -> None:
        self.topic, self.partition, self.last_offset = topic, partition, offset

    @property
    def in_alarm(self) -> bool:
        """An anomaly is open and was reported: what ``tmstream_channel_in_alarm`` exports."""
        return self.threshold is not None and any(a.reported for a in self.threshold.in_progress)

    def append(self, index: int, values: list[float], event_time_ms: int, offset: int) -> None:
        """Add an accepted row (index == next_index, or the channel's first row)."""
        if self.next_index is None:
            self.first_time_index = index
        self.history.append(values)
        if len(self.history) > self.params.l_s:
            self.pending += 1
        self.times.append(event_time_ms)
        self.trim_times()
        self.next_index = index + 1
        self.last_offset = offset

    def trim_times(self) -> None:
        """Keep the event times detections can still ask for: a window behind the scored rows,
        and every row still pending (held while the registry is away)."""
        while len(self.times) > self.time_capacity + self.pending:
            self.times.popleft()
            self.first_time_index += 1

    def carry_for(self, work: ScoringWork, version: str) -> np.ndarray | None:
        """The carried state that continues into ``work`` under ``version``, or None (start it
        from the retained rows: a first window, a gap, a restart or a new champion)."""
        fits = self.carry_version == version and self.carry_next == work.first_index - 1
        return self.carry if fits else None

    def keep_carry(self, carry: np.ndarray | None, next_row: int, version: str) -> None:
        self.carry, self.carry_next, self.carry_version = carry, next_row, version

    def switched(self, version: str) -> bool:
        """Whether the guard moved this stream to windows for ``version``."""
        return self.switched_at is not None and self.switched_version == version

    def take_work(self) -> ScoringWork | None:
        """The rows behind every pending row, handed to the engine; None when nothing is pending."""
        if self.pending == 0 or self.next_index is None:
            return None
        rows = self.history.rows().copy()
        first_index = self.next_index - self.pending
        actuals = rows[-self.pending :, 0].astype(np.float64)
        work = ScoringWork(self.channel, rows, first_index, actuals)
        self.history.keep_last(self.params.l_s)
        self.pending = 0
        return work

    def detect(self, work: ScoringWork, predictions: np.ndarray, model_version: str) -> list[Detection]:
        """Feed predictions for ``work`` to the threshold detector; returns its detections."""
        detections: list[Detection] = []
        if self.threshold is None or model_version != self.model_version:
            self.model_version = model_version
            if self.threshold is None:
                self.threshold = ChannelThresholdState(self.channel, model_version, self.params)
            else:  # a new champion: its anomalies get its ids, so the old ones are closed here
                detections += self.threshold.close_open("model_changed")
                self.threshold.model_version = model_version
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
            "topic": self.topic,
            "partition": self.partition,
            "last_offset": self.last_offset,
            "epoch": self.epoch,
            "params": asdict(self.params),
            "history": self.history.rows().tolist(),
            "pending": self.pending,
            "times": list(self.times),
            "first_time_index": self.first_time_index,
            "threshold": self.threshold.to_dict() if self.threshold else None,
            "carry": None if self.carry is None else self.carry.tolist(),
            "carry_next": self.carry_next,
            "carry_version": self.carry_version,
            "switched_at": self.switched_at,
            "switched_version": self.switched_version,
        }
        return zlib.compress(json.dumps(state, separators=(",", ":")).encode(), 3)

    @classmethod
    def restore(
        cls, payload: bytes, params: ThresholdParameters, channel: str, features: int
    ) -> ChannelStream:
        """The stream a snapshot of ``channel`` holds, checked against what this worker runs;
        ``SnapshotError`` when it cannot be used (the worker then rebuilds from the topic)."""
        try:
            inflater = zlib.decompressobj()
            text = inflater.decompress(payload, MAX_SNAPSHOT_BYTES)
            if inflater.unconsumed_tail:
                raise SnapshotError("too_large", f"channel {channel}: over {MAX_SNAPSHOT_BYTES} bytes")
            state = json.loads(text)
            version = state.pop("version")
            if version not in READABLE_SNAPSHOT_VERSIONS:
                raise SnapshotError("version", f"channel {channel}: snapshot version {version!r}")
            if (state["channel"], state["features"]) != (channel, features):
                found = f"{state['channel']!r} width {state['features']}"
                detail = f"channel {channel} width {features}: a snapshot of {found}"
                raise SnapshotError("wrong_channel", detail)
            if state.pop("params") != asdict(params):
                raise SnapshotError("params_changed", f"channel {channel}: other threshold parameters")
            threshold = state.pop("threshold")
            times = deque(state.pop("times"))
            if any(len(row) != features for row in state["history"]):
                detail = f"channel {channel}: implausible snapshot: rows of another width than {features}"
                raise SnapshotError("implausible", detail)
            state["history"] = RowBuffer(features, state["history"], room=params.l_s + 70)
            carry = state.pop("carry", None)
            state["carry"] = None if carry is None else np.array(carry, dtype=np.float32)
            stream = cls(params=params, times=times, **state)
            stream.threshold = ChannelThresholdState.from_dict(threshold) if threshold else None
        except SnapshotError:
            raise
        except (zlib.error, ValueError, KeyError, TypeError, AttributeError) as exc:
            detail = f"channel {channel}: unreadable snapshot: {type(exc).__name__}: {exc}"
            raise SnapshotError("corrupt", detail) from exc
        stream._check_plausible()
        return stream

    def _check_plausible(self) -> None:
        """The invariants ``append`` and ``take_work`` keep; a snapshot that breaks one was not
        written by them (poisoned, or from a bug) and would score garbage or silence the channel."""
        problems = []
        if self.next_index is None:
            problems.append("no rows")
        elif self.next_index < 0 or self.first_time_index < 0 or self.first_time_index > self.next_index:
            problems.append(f"next_index {self.next_index}, first_time_index {self.first_time_index}")
        if not 0 <= self.pending <= len(self.history) or len(self.history) > self.params.l_s + self.pending:
            problems.append(f"{len(self.history)} rows with {self.pending} pending")
        if self.history.data.shape[1] != self.features or not np.isfinite(self.history.rows()).all():
            problems.append("rows of the wrong width or not finite")
        if len(self.times) > self.time_capacity + self.pending or self.last_offset < 0 or self.partition < 0:
            problems.append(f"{len(self.times)} times, offset {self.last_offset}, partition {self.partition}")
        carry = self.carry
        if carry is not None and (carry.ndim != 2 or len(carry) != 2 or not np.isfinite(carry).all()):
            problems.append(f"a carried state of shape {carry.shape} or not finite")
        threshold = self.threshold
        if threshold is not None and (
            threshold.channel != self.channel
            or threshold.first_row is None
            or self.next_index is None
            or threshold.first_row + threshold.count > self.next_index
        ):
            problems.append("a threshold state ahead of the rows or of another channel")
        if problems:
            detail = f"channel {self.channel}: implausible snapshot: {'; '.join(problems)}"
            raise SnapshotError("implausible", detail)
