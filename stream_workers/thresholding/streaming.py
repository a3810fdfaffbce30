"""Causal, incremental thresholding: Telemanom's windows evaluated as the errors arrive.

One ``ChannelThresholdState`` per channel takes (row, prediction, actual) points in row order. Every
``batch_size`` errors, once a full window of ``window_size * batch_size`` smoothed errors exists, it
evaluates the trailing window with the same code as the batch run (``window.evaluate_window``) and
returns ``Detection`` events. Only past errors are used:

* smoothing is the same EWMA; the batch run's warm-up back-fill (the first l_s smoothed errors
  replaced by the mean of the first 2*l_s) is applied when the first window is evaluated, at which
  point those 2*l_s errors are already in the past;
* the first full window ignores ``warmup`` errors (default 2*l_s, the batch rule for channels of
  2500 errors or more; the batch uses less for shorter channels, a length the stream cannot know);
* the window's gate statistics read the actual values of the window's own rows; the batch reads
  each row's n_predictions targets, i.e. up to n_predictions - 1 rows past the window;
* ``finish()`` (end of a replay) evaluates the errors after the last full batch. With fewer errors
  than one window it runs the batch's single whole-channel window exactly; otherwise it looks only
  at the new errors, where the batch re-evaluates a longer last window;
* scores are per window: how far the sequence's highest error goes past the epsilon actually used,
  (e_s - epsilon) / (window mean + sd), at least 0. The batch's 2018 score needs the whole channel
  (mean, sd, last z) and takes |e_s - z|, which buffer errors far below the threshold can inflate.

An anomaly is ``open`` while later windows can still extend it, ``updated`` when one did, and
``closed`` once the windows have passed it (or at ``finish``); one that opens and closes in the same
window is reported once, as closed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np

from stream_workers.thresholding.batch import warmup_length
from stream_workers.thresholding.parameters import ThresholdParameters
from stream_workers.thresholding.smoothing import EwmaState, warmup_mean
from stream_workers.thresholding.window import WindowContext, WindowResult, consecutive_runs, evaluate_window

DetectionStatus = Literal["open", "updated", "closed"]
# Why a closed anomaly ended: the windows passed it, or the stream behind it stopped (see
# docs/STREAM_WORKERS.md, "Gaps, silence, restarts and model swaps").
CloseReason = Literal["ended", "idle", "stream_gap", "stream_restarted", "model_changed"]
STATE_VERSION = 1


@dataclass(frozen=True)
class Detection:
    """One anomaly event, in test-row indices (inclusive).

    status: ``open`` (can still grow), ``updated`` (grew or scored higher), ``closed`` (final).
    score: the highest excess over the threshold, in window (mean + sd) units; threshold: the
        epsilon behind that score (in the direction's units: inverse errors for ``low``).
    max_error: highest smoothed error in the sequence; direction: ``high`` (errors above the
        threshold), ``low`` (the inverse, errors far below their mean) or ``both``.
    evaluated_through: the last row with an error when the detection was made; the error buffer
        can put ``end`` past it, onto rows that may not have arrived yet.
    close_reason: why a ``closed`` detection ended (None while open).
    """

    channel: str
    model_version: str
    status: DetectionStatus
    start: int
    end: int
    score: float
    threshold: float
    max_error: float
    direction: str
    evaluated_through: int = -1  # the last row with an error when this was found: end may lie beyond it
    close_reason: CloseReason | None = None

    @property
    def detection_id(self) -> str:
        """Stable across open/updated/closed events: the start never moves once reported."""
        return f"{self.channel}:{self.start}:{self.model_version}"


@dataclass
class AnomalyInProgress:
    """A run of flagged errors (error indices, inclusive) the windows may still extend."""

    start: int
    end: int
    score: float = 0.0
    threshold: float = 0.0
    max_error: float = 0.0
    directions: list[str] = field(default_factory=list)
    reported: bool = False

    def absorb(self, other: AnomalyInProgress) -> None:
        self.start, self.end = min(self.start, other.start), max(self.end, other.end)
        if other.score > self.score:
            self.score, self.threshold = other.score, other.threshold
        self.max_error = max(self.max_error, other.max_error)
        self.directions = sorted(set(self.directions) | set(other.directions))
        self.reported = self.reported or other.reported


@dataclass
class ChannelThresholdState:
    """Everything one channel's detector needs between points; JSON-safe through ``to_dict``.

    channel, model_version: copied into every Detection (its id).
    params: thresholding parameters.
    warmup: errors the first full window may not flag (None: 2*l_s).
    backfill_warmup: replace the first l_s smoothed errors as the batch does (see ``smooth_errors``).
    epsilon: the high-side threshold of the last evaluated window (for dashboards), None before it.
    """

    channel: str
    model_version: str
    params: ThresholdParameters
    warmup: int | None = None
    backfill_warmup: bool = True
    first_row: int | None = None
    count: int = 0
    ewma: EwmaState | None = None
    smoothed: list[float] = field(default_factory=list)
    actuals: list[float] = field(default_factory=list)
    flagged: list[int] = field(default_factory=list)
    windows_done: int = 0
    frontier: int = 0
    in_progress: list[AnomalyInProgress] = field(default_factory=list)
    finished: bool = False
    epsilon: float | None = None

    def __post_init__(self) -> None:
        if self.ewma is None:
            self.ewma = EwmaState(self.params.smoothing_span)

    def update(self, row: int, prediction: float, actual: float) -> list[Detection]:
        """Take the prediction and actual value of test row ``row``; return the events it caused.

        Rows must arrive in order without gaps; a row already seen is ignored (redelivery).
        """
        if self.finished:
            raise ValueError(f"channel {self.channel}: stream already finished")
        if self.first_row is None:
            self.first_row = row
        expected = self.first_row + self.count
        if row < expected:
            return []
        if row > expected:
            raise ValueError(f"channel {self.channel}: row {row} arrived, {expected} expected")
        assert self.ewma is not None
        self.smoothed.append(self.ewma.update(abs(float(prediction) - float(actual))))
        self.actuals.append(float(actual))
        self.count += 1
        window_length = self.params.window_length
        if len(self.smoothed) > window_length:
            del self.smoothed[0], self.actuals[0]
        due = self.count >= window_length and (self.count - window_length) % self.params.batch_size == 0
        if not due:
            return []
        if self.windows_done == 0:
            self._backfill_warmup()
        start = self.count - window_length
        ignore = 2 * self.params.l_s if self.warmup is None else self.warmup
        result = self._evaluate(start, self.windows_done, ignore)
        self.windows_done += 1
        return self._advance(result, start, self.count)

    def finish(self, reason: CloseReason = "ended") -> list[Detection]:
        """End of stream: evaluate the errors after the last full batch and close every anomaly,
        the ones still open with ``reason``."""
        if self.finished:
            return []
        self.finished = True
        events: list[Detection] = []
        if self.count > 0 and self.windows_done == 0:
            self._backfill_warmup()
            result = self._evaluate(0, 0, warmup_length(self.count, self.params.l_s))
            events = self._advance(result, 0, self.count)
        elif self.count > self.frontier:
            window = min(self.count, self.params.window_length)
            result = self._evaluate(self.count - window, self.windows_done, 0)
            events = self._advance(result, self.count - window, self.count)
        return events + self.close_open(reason)

    def close_open(self, reason: CloseReason) -> list[Detection]:
        """Close every anomaly in progress with ``reason``; later windows start new ones (rows
        before the frontier are never flagged again)."""
        closing, self.in_progress = self.in_progress, []
        return [self._event(a, "closed", reason) for a in closing if a.end > a.start]

    def _backfill_warmup(self) -> None:
        if not self.backfill_warmup:
            return
        l_s = self.params.l_s
        smoothed = np.asarray(self.smoothed)
        self.smoothed[:l_s] = [warmup_mean(smoothed, l_s)] * min(l_s, len(self.smoothed))

    def _evaluate(self, start: int, window: int, ignore: int) -> WindowResult:
        buffer_start = self.count - len(self.smoothed)
        e_s = np.asarray(self.smoothed[start - buffer_start :])
        targets = np.asarray(self.actuals[start - buffer_start :])
        behind = np.arange(len(e_s)) + start - self.params.batch_size
        flagged_before = np.isin(behind, np.asarray(self.flagged, dtype=np.int64))
        context = WindowContext(window=window, ignore_before=ignore, flagged_before=flagged_before)
        result = evaluate_window(e_s, targets, context, self.params)
        self.epsilon = float(result.high.epsilon)
        return result

    def _advance(self, result: WindowResult, start: int, end: int) -> list[Detection]:
        """Merge a window's flags into the anomalies in progress and report what changed."""
        e_s = np.asarray(self.smoothed[start - (self.count - len(self.smoothed)) :])
        scale = result.mean + result.sd
        fresh: dict[int, AnomalyInProgress] = {}
        for direction, flagged in (("high", result.high), ("low", result.low)):
            values = e_s if direction == "high" else result.mean + (result.mean - e_s)
            for position in flagged.indices.tolist():
                index = start + position
                if index < self.frontier:
                    continue
                point = AnomalyInProgress(index, index, directions=[direction])
                if position < len(e_s):
                    point.score = max(0.0, float((values[position] - flagged.epsilon) / scale))
                    point.threshold = flagged.epsilon
                    point.max_error = float(e_s[position])
                if index in fresh:
                    fresh[index].absorb(point)
                else:
                    fresh[index] = point
        keep_from = end - self.params.window_length - self.params.batch_size
        self.flagged = [i for i in sorted(set(self.flagged) | set(fresh)) if i >= keep_from]
        previous = self.in_progress
        pieces = [*previous, *fresh.values()]
        covered = sorted({i for piece in pieces for i in range(piece.start, piece.end + 1)})
        events: list[Detection] = []
        self.in_progress = []
        for run_start, run_end in consecutive_runs(np.asarray(covered, dtype=np.int64)):
            members = [p for p in pieces if run_start <= p.start and p.end <= run_end]
            merged = replace(members[0], directions=list(members[0].directions))
            for member in members[1:]:
                merged.absorb(member)
            if run_end <= end - 2:
                if run_end > run_start:
                    events.append(self._event(merged, "closed", "ended"))
                continue
            if run_end > run_start:
                known = [m for m in members if m.reported and any(m is p for p in previous)]
                if not known:
                    events.append(self._event(merged, "open"))
                elif any((m.end, m.score) != (merged.end, merged.score) for m in known):
                    events.append(self._event(merged, "updated"))
                merged.reported = True
            self.in_progress.append(merged)
        self.frontier = end
        return events

    def _event(
        self, anomaly: AnomalyInProgress, status: DetectionStatus, reason: CloseReason | None = None
    ) -> Detection:
        assert self.first_row is not None
        return Detection(
            channel=self.channel,
            model_version=self.model_version,
            status=status,
            start=anomaly.start + self.first_row,
            end=anomaly.end + self.first_row,
            score=anomaly.score,
            threshold=anomaly.threshold,
            max_error=anomaly.max_error,
            direction="both" if len(anomaly.directions) > 1 else anomaly.directions[0],
            evaluated_through=self.first_row + self.count - 1,
            close_reason=reason,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe snapshot (plain ints, floats, strings, lists) for a changelog-backed table."""
        snapshot = asdict(self)
        snapshot["version"] = STATE_VERSION
        return snapshot

    @classmethod
    def from_dict(cls, snapshot: dict[str, Any]) -> ChannelThresholdState:
        if snapshot.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported threshold state version {snapshot.get('version')!r}")
        values = {k: v for k, v in snapshot.items() if k != "version"}
        values["params"] = ThresholdParameters(**values["params"])
        values["ewma"] = EwmaState(**values["ewma"])
        values["in_progress"] = [AnomalyInProgress(**a) for a in values["in_progress"]]
        values["smoothed"], values["actuals"] = list(values["smoothed"]), list(values["actuals"])
        values["flagged"] = list(values["flagged"])
        return cls(**values)
