"""Scoring in the stream, deterministic: accept telemetry, score windows, detect anomalies.

No Kafka here: the worker core hands in raw records and takes back dead letters and anomaly
events, so the same code is tested directly against the 2018 predictions and labels.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from model_store.engine import CarriedSteps
from model_store.exceptions import ModelNotFound, ModelStoreError, RegistryUnavailable
from model_store.inference_mode import TOLERANCE, VERIFY_EVERY, InferenceMode
from model_store.weights import LstmWeights
from producers.channel_spec import ChannelSpec
from producers.exceptions import MessageError
from producers.messages import TelemetryMessage, out_of_range_detail
from stream_workers.channel_stream import ChannelStream, ScoringWork
from stream_workers.events import AnomalyEvent
from stream_workers.ports import MetricsPort, RecordRef
from stream_workers.thresholding.parameters import ThresholdParameters
from stream_workers.thresholding.streaming import CloseReason, Detection

log = logging.getLogger(__name__)
# rows a channel keeps while the registry is away: 10,000 rows of 55 float32 features are 2.2 MB
# (2.8 hours at the nominal 1 point/s)
MAX_HELD_ROWS = 10_000
# hybrid: each version's measured mode, checked online; windowed: Telemanom's computation for
# every channel; approximate: one step per point for every channel, unchecked (docs/ACCURACY.md)
InferencePolicy = Literal["hybrid", "windowed", "approximate"]


class ModelMismatch(ModelStoreError):
    """The champion's input (window length, width) does not fit the channel's stream."""


class ModelLookup(Protocol):
    def get(self, channel: str) -> LstmWeights: ...


class Predictor(Protocol):
    def predict_series(self, weights: LstmWeights, rows: np.ndarray) -> np.ndarray: ...

    def predict_series_many(self, items: Sequence[tuple[LstmWeights, np.ndarray]]) -> list[np.ndarray]: ...

    def carry_many(
        self, items: Sequence[tuple[LstmWeights, np.ndarray, np.ndarray | None]]
    ) -> list[CarriedSteps]: ...


@dataclass(frozen=True)
class Prediction:
    """One channel's predictions for its work, and what stateful inference leaves behind."""

    values: np.ndarray
    mode: InferenceMode
    carry: np.ndarray | None = None  # the state after the work's inputs (stateful only)
    switched_at: int | None = None  # the guard found the state off at this row: windows after it
    drift: float = 0.0


@dataclass(frozen=True)
class DeadLetter:
    reason: str
    detail: str
    record: RecordRef


class StreamScorer:
    """Per-channel streams, fed record by record and scored in micro-batches."""

    def __init__(
        self,
        params: ThresholdParameters,
        models: ModelLookup,
        engine: Predictor,
        channel_spec: Callable[[str], ChannelSpec | None],
        metrics: MetricsPort,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        policy: InferencePolicy = "hybrid",
        verify_every: int = VERIFY_EVERY,
        tolerance: float = TOLERANCE,
    ) -> None:
        self.policy = policy
        self.verify_every = verify_every
        self.tolerance = tolerance
        self.modes: dict[str, dict[str, str]] = {}  # channel → version, mode and why, for /models
        self.params = params
        self.models = models
        self.engine = engine
        self.channel_spec = channel_spec
        self.metrics = metrics
        self.clock = clock
        self.monotonic = monotonic
        self.streams: dict[str, ChannelStream] = {}
        self.latest: dict[str, dict[str, float | int | str]] = {}
        self.last_seen: dict[str, float] = {}
        self.held: set[str] = set()  # channels whose rows wait for the registry
        self.counted: dict[str, set[str]] = {}  # event ids counted as opened, by channel
        self.retired: list[tuple[ChannelStream, CloseReason]] = []  # replaced, to score and close

    def accept(self, record: RecordRef) -> DeadLetter | None:
        """Validate one record and add its row to its channel; a bad record becomes a dead letter."""
        if record.value is None:
            return DeadLetter("malformed_json", "a record without a value (tombstone)", record)
        try:
            message = TelemetryMessage.from_bytes(record.value)
        except MessageError as exc:
            return DeadLetter(exc.reason, str(exc), record)
        channel = message.channel
        if record.key is not None and record.key.decode(errors="replace") != channel:
            return DeadLetter("key_mismatch", f"key {record.key!r} but channel {channel!r}", record)
        spec = self.channel_spec(channel)
        if spec is None:
            return DeadLetter("unknown_channel", f"channel {channel!r} is not in the registry", record)
        if record.topic != spec.topic:
            detail = f"channel {channel} on topic {record.topic!r}; its topic is {spec.topic!r}"
            return DeadLetter("wrong_topic", detail, record)
        if len(message.values) != spec.features:
            detail = f"channel {channel}: {len(message.values)} values, expected {spec.features}"
            return DeadLetter("wrong_width", detail, record)
        if not all(math.isfinite(v) for v in message.values):
            return DeadLetter("nan_or_inf", f"channel {channel} index {message.index}", record)
        if (beyond := out_of_range_detail(message.values)) is not None:
            return DeadLetter("out_of_range", f"channel {channel} index {message.index}: {beyond}", record)
        stream = self.streams.get(channel)
        if stream is not None and stream.features != spec.features:  # the registry changed its width
            stream = self._restart(stream, "stream_restarted", stream.epoch + 1)
        if stream is None:
            stream = self.streams[channel] = ChannelStream(
                channel, message.spacecraft, spec.features, self.params
            )
            self.metrics.channel_started(message.spacecraft, channel)
        labels = (stream.spacecraft, channel)
        if stream.is_redelivery(record.topic, record.partition, record.offset):
            self.metrics.point_redelivered(*labels)
            return None
        if stream.next_index is not None and message.index < stream.next_index:
            # the same row again carries its own time: compare with that row's (the oldest kept
            # for rows already forgotten), not the newest, which a restart's first row can share
            # to the millisecond (a paced replay hands a tick's points over in one go)
            if not stream.times or message.event_time_ms <= stream.time_of(message.index):
                reason = "duplicate_index" if message.index == stream.next_index - 1 else "out_of_order_index"
                detail = f"channel {channel}: index {message.index}, expected {stream.next_index}"
                stream.take_position(record.topic, record.partition, record.offset)
                return DeadLetter(reason, detail, record)
            # a later time with an earlier index: the source restarted its counter (a replay
            # --loop, a re-run without --resume): a new stream epoch, scored like the first
            log.info("channel %s: index restarted at %d (was %d): stream epoch %d", channel,
                     message.index, stream.next_index, stream.epoch + 1)  # fmt: skip
            self.metrics.stream_reset(*labels)
            stream = self._restart(stream, "stream_restarted", stream.epoch + 1)
        elif stream.next_index is not None and message.index > stream.next_index:
            log.info("channel %s: rows %d-%d never arrived; detection restarts", channel,
                     stream.next_index, message.index - 1)  # fmt: skip
            self.metrics.stream_reset(*labels)
            stream = self._restart(stream, "stream_gap", stream.epoch)
        self.metrics.point_consumed(*labels)
        stream.append(message.index, message.values, message.event_time_ms, record.offset)
        stream.take_position(record.topic, record.partition, record.offset)
        return None

    def _restart(self, stream: ChannelStream, reason: CloseReason, epoch: int) -> ChannelStream:
        """A fresh stream for the channel; the old one is scored and closed with ``reason`` in the
        next ``score`` (its pending rows are not lost, its open anomalies not left open)."""
        self.retired.append((stream, reason))
        fresh = ChannelStream(stream.channel, stream.spacecraft, stream.features, self.params, epoch=epoch)
        self.streams[stream.channel] = fresh
        return fresh

    def pending_windows(self) -> int:
        return sum(stream.pending for stream in self.streams.values())

    def score(self) -> list[AnomalyEvent]:
        """Score every pending row and return the anomaly events.

        All channels' windows go to the engine in one ``predict_series_many`` call (channels of
        one architecture share its step loop), then each channel's thresholds are updated. A
        channel whose model is missing, does not fit or fails, or whose scoring fails in any other
        way, is left unscored alone (counted, its open anomalies closed); the others go on.
        Streams replaced since the last call are scored first, then closed.
        Runs off the event loop: the engine's kernels release the GIL.
        """
        started = time.perf_counter()
        windows = 0
        retired, self.retired = self.retired, []
        candidates: list[tuple[ChannelStream, CloseReason | None]] = [
            *retired,
            *((stream, None) for stream in self.streams.values()),
        ]
        out: dict[int, list[AnomalyEvent]] = {id(stream): [] for stream, _ in candidates}
        taken: list[tuple[ChannelStream, ScoringWork, LstmWeights]] = []
        for stream, reason in candidates:
            if stream.pending == 0 or stream.next_index is None:
                continue
            weights, failure = self._model_for(stream)
            if isinstance(failure, RegistryUnavailable) and reason is None and self._hold(stream, failure):
                continue
            work = self._take_work(stream)
            if work is None:
                continue
            windows += work.count
            if weights is None:
                out[id(stream)] += self._unscored(stream, work, failure or ModelNotFound(stream.channel))
            else:
                if stream.channel in self.held:
                    log.info("channel %s: the registry answered; scoring %d held rows",
                             stream.channel, work.count)  # fmt: skip
                    self.held.discard(stream.channel)
                taken.append((stream, work, weights))
            self.last_seen[stream.channel] = self.monotonic()
        for (stream, work, weights), prediction in zip(taken, self._predict(taken, out), strict=True):
            if prediction is not None:
                self._keep_mode(stream, work, weights, prediction)
                out[id(stream)] += self._apply(stream, work, weights, prediction.values)
        for stream, reason in retired:
            out[id(stream)] += self._close(stream, reason)
        if windows:
            self.metrics.batch_scored(time.perf_counter() - started, windows)
        return [event for stream, _ in candidates for event in out[id(stream)]]

    def _take_work(self, stream: ChannelStream) -> ScoringWork | None:
        try:
            return stream.take_work()
        except Exception:  # its rows cannot be stacked: the stream starts again without them
            log.exception("channel %s: its rows cannot be scored; the stream restarts", stream.channel)
            self.metrics.unscored(stream.spacecraft, stream.channel, "channel_error", stream.pending)
            stream.pending = 0
            self._restart(stream, "stream_gap", stream.epoch)
            return None

    def _model_for(self, stream: ChannelStream) -> tuple[LstmWeights | None, Exception | None]:
        """The channel's champion, or why it has none that fits."""
        try:
            weights = self.models.get(stream.channel)
            if (weights.l_s, weights.n_features) != (self.params.l_s, stream.features):
                raise ModelMismatch(
                    f"channel {stream.channel} model version {weights.version}: input "
                    f"({weights.l_s}, {weights.n_features}), stream ({self.params.l_s}, {stream.features})"
                )
        except Exception as exc:
            return None, exc
        return weights, None

    def _hold(self, stream: ChannelStream, exc: RegistryUnavailable) -> bool:
        """Keep the rows of a channel whose model the registry cannot hand over now (a stopped
        MLflow server): they are scored when it answers, up to ``MAX_HELD_ROWS``; past that they
        are left unscored (``model_error``) and the channel starts again."""
        if stream.pending > MAX_HELD_ROWS:
            self.held.discard(stream.channel)
            return False
        if stream.channel not in self.held:
            log.warning("channel %s: %s; holding its rows until the registry answers", stream.channel, exc)
            self.held.add(stream.channel)
        return True

    def _predict(
        self, taken: list[tuple[ChannelStream, ScoringWork, LstmWeights]], out: dict[int, list[AnomalyEvent]]
    ) -> list[Prediction | None]:
        """Predictions of every taken channel in one engine call per mode; if that fails, channel
        by channel, so only the failing channel is left unscored (None)."""
        if not taken:
            return []
        try:
            return list(self._predict_all(taken))
        except Exception:
            log.warning("batched prediction of %d channels failed; predicting them one by one", len(taken))
        found: list[Prediction | None] = []
        for item in taken:
            try:
                found.append(self._predict_all([item])[0])
            except Exception as exc:
                out[id(item[0])] += self._unscored(item[0], item[1], exc)
                found.append(None)
        return found

    def mode_of(self, stream: ChannelStream, weights: LstmWeights) -> InferenceMode:
        if self.policy != "hybrid":
            return "stateful" if self.policy == "approximate" else "windowed"
        return "windowed" if stream.switched(weights.version) else weights.inference_mode

    def _predict_all(
        self, taken: Sequence[tuple[ChannelStream, ScoringWork, LstmWeights]]
    ) -> list[Prediction]:
        """Windowed channels through ``predict_series_many``, stateful ones through ``carry_many``
        (one step per new row from the carried state, or from the retained rows where there is
        none), then the online guard on the stateful ones. Does not touch the streams."""
        modes = [self.mode_of(stream, weights) for stream, _, weights in taken]
        found: dict[int, Prediction] = {}
        windowed = [i for i, mode in enumerate(modes) if mode == "windowed"]
        if windowed:
            items = [(taken[i][2], taken[i][1].rows) for i in windowed]
            for i, values in zip(windowed, self.engine.predict_series_many(items), strict=True):
                found[i] = Prediction(values, "windowed")
        stateful = [i for i, mode in enumerate(modes) if mode == "stateful"]
        if stateful:
            feeds = []
            for i in stateful:
                stream, work, weights = taken[i]
                carry = stream.carry_for(work, weights.version)
                start = 0 if carry is None else len(work.rows) - 1 - work.count
                feeds.append((weights, work.rows[start:-1], carry))
            for i, steps in zip(stateful, self.engine.carry_many(feeds), strict=True):
                values = steps.predictions[len(steps.predictions) - taken[i][1].count :]
                found[i] = Prediction(values, "stateful", steps.carry)
            if self.policy == "hybrid":
                checked = self._guard([(*taken[i], found[i]) for i in stateful])
                found.update(zip(stateful, checked, strict=True))
        return [found[i] for i in range(len(taken))]

    def _guard(
        self, items: list[tuple[ChannelStream, ScoringWork, LstmWeights, Prediction]]
    ) -> list[Prediction]:
        """The online guard: at every row whose index is a multiple of ``verify_every``, the exact
        windowed prediction beside the carried one; past the tolerance, the rows after it are
        predicted with windows and the channel stays windowed for this model version. By row index,
        not by batch, so a channel re-scored after a restart is checked at the same rows."""
        checks: list[tuple[int, int]] = []  # (item, row)
        for n, (_, work, _, _) in enumerate(items):
            last = work.first_index + work.count - 1
            first_check = -(-work.first_index // self.verify_every) * self.verify_every
            checks += [(n, row) for row in range(first_check, last + 1, self.verify_every)]
        if not checks:
            return [prediction for *_, prediction in items]
        l_s = self.params.l_s
        windows = []
        for n, row in checks:
            _, work, weights, _ = items[n]
            at = row - work.first_index
            windows.append((weights, work.rows[at : at + l_s + 1]))
        exact = self.engine.predict_series_many(windows)
        result = [prediction for *_, prediction in items]
        for (n, row), value in zip(checks, exact, strict=True):
            _, work, weights, prediction = items[n]
            if result[n].switched_at is not None:
                continue
            at = row - work.first_index
            drift = abs(float(prediction.values[at]) - float(value[0]))
            if drift <= self.tolerance:
                continue
            values = prediction.values.copy()
            if at + 1 < work.count:
                values[at + 1 :] = self.engine.predict_series(weights, work.rows[at + 1 :])
            result[n] = Prediction(values, "windowed", None, row, drift)
        return result

    def _keep_mode(
        self, stream: ChannelStream, work: ScoringWork, weights: LstmWeights, prediction: Prediction
    ) -> None:
        """The stream's carried state after this work, a guard's switch, and the mode for /models."""
        last = work.first_index + work.count - 1
        stream.keep_carry(prediction.carry, last, weights.version)
        if prediction.switched_at is not None:
            stream.switched_at, stream.switched_version = prediction.switched_at, weights.version
            log.warning("channel %s model version %s: stateful prediction off by %.3g at row %d "
                        "(tolerance %g); windowed from row %d", stream.channel, weights.version,
                        prediction.drift, prediction.switched_at, self.tolerance,
                        prediction.switched_at + 1)  # fmt: skip
            self.metrics.inference_switched(stream.spacecraft, stream.channel, "verify_drift")
        known = self.modes.get(stream.channel)
        if known is None or (known["version"], known["mode"]) != (weights.version, prediction.mode):
            # once per change, not per batch: this runs for every channel of every micro-batch
            why = self._why(stream, weights)
            self.modes[stream.channel] = {"version": weights.version, "mode": prediction.mode, "why": why}

    def _why(self, stream: ChannelStream, weights: LstmWeights) -> str:
        if self.policy != "hybrid":
            return f"policy {self.policy}"
        if stream.switched(weights.version):
            return f"guard: stateful off past {self.tolerance:g} at row {stream.switched_at}"
        if weights.verdict is None:
            return "windowed: the version was never measured"
        return weights.verdict.describe()

    def _unscored(self, stream: ChannelStream, work: ScoringWork, exc: Exception) -> list[AnomalyEvent]:
        """Count the work's points unscored; the scored rows now have a gap, so the channel's open
        anomalies are closed (``stream_gap``) and detection starts again after it."""
        labels = (stream.spacecraft, stream.channel)
        if isinstance(exc, ModelNotFound):
            reason = "no_model"
        elif isinstance(exc, ModelMismatch):
            log.error("%s; points left unscored", exc)
            reason = "model_mismatch"
        elif isinstance(exc, ModelStoreError):
            log.error("channel %s: %s; points left unscored", stream.channel, exc)
            reason = "model_error"
        else:
            log.error("channel %s: scoring failed; points left unscored", stream.channel, exc_info=exc)
            reason = "channel_error"
        self.metrics.unscored(*labels, reason, work.count)
        return self._close(stream, "stream_gap")

    def _close(self, stream: ChannelStream, reason: CloseReason) -> list[AnomalyEvent]:
        """Finish the channel's detector: its tail evaluated, its open anomalies closed with ``reason``."""
        threshold, stream.threshold = stream.threshold, None
        if threshold is None or threshold.finished:
            return []
        try:
            detections = threshold.finish(reason)
        except Exception:
            log.exception("channel %s: its detector cannot be finished; its state is dropped", stream.channel)
            return []
        self.metrics.alarm_cleared(stream.spacecraft, stream.channel)
        return self._events(stream, detections, self.clock())

    def _apply(
        self, stream: ChannelStream, work: ScoringWork, weights: LstmWeights, predictions: np.ndarray
    ) -> list[AnomalyEvent]:
        """Feed one channel's predictions to its threshold detector; its events and metrics."""
        labels = (stream.spacecraft, stream.channel)
        threshold = stream.threshold
        events: list[AnomalyEvent] = []
        if threshold is not None and (
            threshold.finished
            or threshold.first_row is None
            or threshold.first_row + threshold.count != work.first_index
        ):
            events += self._close(stream, "stream_gap")
        try:
            detections = stream.detect(work, predictions, weights.version)
        except Exception as exc:  # the detector's state cannot be trusted after this
            stream.threshold = None
            return events + self._unscored(stream, work, exc)
        now = self.clock()
        last_index = work.first_index + work.count - 1
        self.metrics.scored(*labels, work.count, max(0.0, now - stream.time_of(last_index) / 1000))
        self._record_latest(stream, last_index, float(predictions[-1]), float(work.actuals[-1]))
        events += self._events(stream, detections, now)
        stream.trim_times()  # after the events took their times: held rows may have needed old ones
        return events

    def _record_latest(self, stream: ChannelStream, index: int, prediction: float, actual: float) -> None:
        labels = (stream.spacecraft, stream.channel)
        threshold = stream.threshold
        error = abs(prediction - actual)
        smoothed = threshold.smoothed[-1] if threshold is not None and threshold.smoothed else error
        epsilon = threshold.epsilon if threshold is not None and threshold.epsilon is not None else 0.0
        in_alarm = int(stream.in_alarm)
        latest = {
            "value": actual,
            "prediction": prediction,
            "error": error,
            "smoothed_error": smoothed,
            "threshold": epsilon,
            "in_alarm": in_alarm,
        }
        self.metrics.channel_latest(*labels, latest)
        self.latest[stream.channel] = {"index": index, **latest, "model_version": stream.model_version}

    def _events(self, stream: ChannelStream, detections: list[Detection], now: float) -> list[AnomalyEvent]:
        labels = (stream.spacecraft, stream.channel)
        events = [
            AnomalyEvent.from_detection(
                detection,
                stream.spacecraft,
                stream.time_of(detection.start),
                # not past the rows the detector had seen: later rows may or may not have arrived
                # in the same micro-batch, and a re-derived event must carry the same time
                stream.time_of(min(detection.end, detection.evaluated_through)),
                int(now * 1000),
                stream.epoch,
            )
            for detection in detections
        ]
        for event in events:
            counted = self.counted.setdefault(stream.channel, set())
            if event.event_id not in counted:
                counted.add(event.event_id)
                self.metrics.anomaly_opened(*labels, event.subsystem, event.severity)
        return events

    def forget(self, channel: str) -> ChannelStream | None:
        """Drop everything held for ``channel`` (its partition went to another worker); its stream."""
        self.modes.pop(channel, None)
        self.last_seen.pop(channel, None)
        self.latest.pop(channel, None)
        self.counted.pop(channel, None)
        return self.streams.pop(channel, None)

    def take_latest(self) -> dict[str, dict[str, float | int | str]]:
        """The latest value, prediction and errors of each channel scored since the last call."""
        latest, self.latest = self.latest, {}
        return latest

    def close_idle(self, idle_seconds: float, busy: frozenset[str] = frozenset()) -> list[AnomalyEvent]:
        """Evaluate the tail of channels silent for ``idle_seconds`` and close their anomalies.

        A replay ends without an end-of-stream record; this is how its last errors (and channels
        shorter than one threshold window) still get a decision. A later point restarts detection.
        Channels in ``busy`` (records still waiting on their partition) are never idle.
        """
        now = self.monotonic()
        events: list[AnomalyEvent] = []
        for channel, seen in list(self.last_seen.items()):
            stream = self.streams.get(channel)
            if now - seen < idle_seconds or stream is None or stream.pending or channel in busy:
                continue
            del self.last_seen[channel]
            if stream.threshold is None or stream.threshold.finished:
                continue
            events += self._close(stream, "idle")
        return events
