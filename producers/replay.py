"""Replay a Telemanom-layout data folder into the per-channel topics, as a live feed would arrive.

Channels advance round-robin in chunks so every channel's stream moves forward together. Pacing is
either as fast as possible or a rate in points per second per channel (``--speedup X`` is X times
the nominal rate of one point per second). Each point's ``event_time_ms`` is the wall clock when it
is handed to Kafka, so event time → scored latency downstream is meaningful.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from producers.channel_spec import ChannelSpec
from producers.clients import ProducerTuning
from producers.dataset import Split, TelemanomDataset
from producers.exceptions import ProducerError, PublishError
from producers.publisher import RejectedRow, TelemetryPublisher
from producers.registry import ChannelRegistry
from producers.resume import last_indices
from tmstream.ground.exceptions import DataError
from tmstream.ground.settings import Settings
from tmstream.ground.topics import ensure_topics

log = logging.getLogger(__name__)
NOMINAL_POINTS_PER_S = 1.0
MAX_CHUNK = 1024
PACING_TICK_S = 0.005  # paced replays send what is due at most every 5 ms, not point by point
FAST_TUNING = ProducerTuning(linger_ms=20)
PACED_TUNING = ProducerTuning(linger_ms=5)


@dataclass(frozen=True)
class ReplayPlan:
    """What to replay; ``rate`` None means as fast as possible."""

    channels: list[ChannelSpec]
    split: Split = "test"
    rate: float | None = None
    loop: bool = False
    from_index: int = 0
    resume: bool = False
    until_index: int | None = None  # exclusive: replay a slice of every channel (and loop over it)


@dataclass
class ChannelCursor:
    spec: ChannelSpec
    rows: np.ndarray
    start: int
    position: int
    handed: int = 0
    loops: int = 0

    @property
    def left(self) -> int:
        return len(self.rows) - self.position


@dataclass
class ReplaySummary:
    points: dict[str, int]
    errors: dict[str, int]
    rejected: list[RejectedRow]
    start_index: dict[str, int]
    elapsed_s: float
    stopped_by: str | None = None
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def total_points(self) -> int:
        return sum(self.points.values())

    @property
    def points_per_s(self) -> float:
        return self.total_points / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "points": self.points,
            "errors": self.errors,
            "rejected": [row.__dict__ for row in self.rejected],
            "start_index": self.start_index,
            "total_points": self.total_points,
            "elapsed_s": round(self.elapsed_s, 3),
            "points_per_s": round(self.points_per_s, 1),
            "stopped_by": self.stopped_by,
            "skipped": self.skipped,
        }


class ReplayObserver:
    """Progress hooks; the CLI shows a progress bar or log lines, tests and benchmarks ignore them."""

    def started(self, total_points: int | None, cursors: list[ChannelCursor]) -> None:
        """Called once, before the first point."""

    def advanced(self, points: int) -> None:
        """``points`` more points handed to Kafka."""

    def rejected(self, row: RejectedRow) -> None:
        """A row that was not sent (NaN/inf, wrong width)."""


class Replay:
    """One replay run; ``stop(reason)`` (from a signal handler) ends it after flushing in-flight points."""

    def __init__(
        self,
        settings: Settings,
        registry: ChannelRegistry,
        plan: ReplayPlan,
        observer: ReplayObserver | None = None,
        tuning: ProducerTuning | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.plan = plan
        self.observer = observer or ReplayObserver()
        self.tuning = tuning or (FAST_TUNING if plan.rate is None else PACED_TUNING)
        self._stop = threading.Event()
        self.stopped_by: str | None = None

    def stop(self, reason: str) -> None:
        self.stopped_by = self.stopped_by or reason
        self._stop.set()

    def run(self) -> ReplaySummary:
        """Replay until the data ends (or forever with ``loop``) or ``stop``; failed deliveries raise."""
        ensure_topics(self.settings, [spec.topic for spec in self.plan.channels])
        cursors, skipped = self._cursors()
        total = None if self.plan.loop else sum(c.left for c in cursors)
        self.observer.started(total, cursors)
        rejected: list[RejectedRow] = []
        with TelemetryPublisher(self.settings, self.registry, tuning=self.tuning) as publisher:
            publisher.prepare([c.spec.channel for c in cursors])
            started = time.monotonic()
            try:
                self._pump(publisher, cursors, rejected, started)
            finally:
                flush_error = _flush(publisher, self.tuning.delivery_timeout_ms / 1000)
            elapsed = time.monotonic() - started
            summary = ReplaySummary(
                points={c.spec.channel: publisher.stats.channel(c.spec.channel).sent for c in cursors},
                errors={c.spec.channel: publisher.stats.channel(c.spec.channel).errors for c in cursors},
                rejected=rejected,
                start_index={c.spec.channel: c.start for c in cursors},
                elapsed_s=elapsed,
                stopped_by=self.stopped_by,
                skipped=skipped,
            )
            if flush_error:
                raise ReplayFailedError(summary, flush_error)
        return summary

    def _pump(
        self,
        publisher: TelemetryPublisher,
        cursors: list[ChannelCursor],
        rejected: list[RejectedRow],
        t0: float,
    ) -> None:
        active = [c for c in cursors if c.left > 0 or self.plan.loop]
        rate = self.plan.rate
        while active and not self._stop.is_set():
            due = None if rate is None else int((time.monotonic() - t0) * rate) + 1
            for cursor in active:
                count = MAX_CHUNK if due is None else min(MAX_CHUNK, due - cursor.handed)
                count = min(count, cursor.left)
                if count <= 0:
                    continue
                chunk = cursor.rows[cursor.position : cursor.position + count]
                bad = publisher.publish_batch(cursor.spec.channel, cursor.position, chunk)
                for row in bad:
                    rejected.append(row)
                    self.observer.rejected(row)
                cursor.position += count
                cursor.handed += count
                if cursor.left == 0 and self.plan.loop:
                    cursor.position, cursor.loops = 0, cursor.loops + 1
                publisher.set_lag(cursor.spec.channel, cursor.left)
                self.observer.advanced(count)
                if self._stop.is_set():
                    return
            active = [c for c in active if c.left > 0]
            if rate is not None and active:
                batch = max(1.0, rate * PACING_TICK_S)
                next_due = t0 + (min(c.handed for c in active) + batch) / rate
                self._stop.wait(max(0.0, next_due - time.monotonic()))

    def _cursors(self) -> tuple[list[ChannelCursor], dict[str, str]]:
        specs = self.plan.channels
        dataset = TelemanomDataset(self.settings.data_dir)
        starts = {spec.channel: self.plan.from_index for spec in specs}
        if self.plan.resume:
            for channel, last in last_indices(self.settings, specs).items():
                if last is not None:
                    starts[channel] = last + 1
        cursors, skipped = [], {}
        for spec in specs:
            rows = _rows(dataset, spec, self.plan.split)[: self.plan.until_index]
            start = starts[spec.channel]
            if start >= len(rows):
                if not (self.plan.loop and self.plan.resume):
                    skipped[spec.channel] = f"start index {start} is past the last row {len(rows) - 1}"
                    continue
                start = 0
            cursors.append(ChannelCursor(spec, rows, start, start))
        return cursors, skipped


class ReplayFailedError(PublishError):
    """Some points were not delivered; carries the summary so the CLI can still report counts."""

    def __init__(self, summary: ReplaySummary, cause: PublishError) -> None:
        super().__init__(str(cause))
        self.summary = summary


def _rows(dataset: TelemanomDataset, spec: ChannelSpec, split: Split) -> np.ndarray:
    """The channel's rows, memory-mapped (the whole test split is ~150 MB as float64)."""
    path = Path(dataset.root) / split / f"{spec.channel}.npy"
    if not path.is_file():
        raise DataError(f"channel {spec.channel} has no {split} data file {path}")
    rows = np.load(path, mmap_mode="r")
    if rows.ndim != 2:
        raise DataError(f"{path}: expected a 2-D array, found shape {rows.shape}")
    return np.asarray(rows)  # a plain view of the map: slicing a memmap runs Python code per chunk


def _flush(publisher: TelemetryPublisher, timeout_s: float) -> PublishError | None:
    try:
        publisher.flush(timeout_s)
    except PublishError as exc:
        return exc
    return None


def run_replay(
    settings: Settings,
    registry: ChannelRegistry,
    plan: ReplayPlan,
    observer: ReplayObserver | None = None,
    on_start: Callable[[Replay], None] | None = None,
) -> ReplaySummary:
    """Build and run a replay; ``on_start`` gets it first (to wire signal handlers to ``stop``)."""
    if plan.rate is not None and plan.rate <= 0:
        raise ProducerError(f"rate must be positive, got {plan.rate}")
    if plan.from_index < 0:
        raise ProducerError(f"from-index must be ≥ 0, got {plan.from_index}")
    if plan.until_index is not None and plan.until_index <= plan.from_index:
        raise ProducerError(f"until-index must be above from-index {plan.from_index}, got {plan.until_index}")
    replay = Replay(settings, registry, plan, observer)
    if on_start:
        on_start(replay)
    return replay.run()
