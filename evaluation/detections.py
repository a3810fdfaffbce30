"""Detections of one channel from its predictions, by the batch run or by replaying the stream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from stream_workers.thresholding.batch import detect_batch
from stream_workers.thresholding.parameters import ThresholdParameters
from stream_workers.thresholding.streaming import ChannelThresholdState

DetectorKind = Literal["batch", "stream"]

REFERENCE_RUN_NO_BACKFILL = frozenset({"C-2"})
"""Channels whose smoothed warm-up the 2018 code left as is (hard-coded: its anomaly starts early)."""


@dataclass(frozen=True)
class ScoredRange:
    """A detected anomaly in inclusive test-row indices and its score."""

    start: int
    end: int
    score: float


def batch_detections(
    predictions: np.ndarray, telemetry: np.ndarray, params: ThresholdParameters, backfill_warmup: bool
) -> list[ScoredRange]:
    """The 2018 batch run's sequences for one channel (see ``detect_batch``)."""
    result = detect_batch(predictions, telemetry, params, backfill_warmup)
    return [ScoredRange(s.start, s.end, s.score) for s in result.sequences]


def stream_detections(
    channel: str,
    predictions: np.ndarray,
    telemetry: np.ndarray,
    params: ThresholdParameters,
    backfill_warmup: bool,
    model_version: str = "evaluation",
) -> list[ScoredRange]:
    """Replay predictions through a ``ChannelThresholdState`` and keep its closed detections."""
    state = ChannelThresholdState(channel, model_version, params, backfill_warmup=backfill_warmup)
    actuals = telemetry[params.l_s : params.l_s + len(predictions)]
    if len(actuals) < len(predictions):
        raise ValueError(f"{channel}: {len(predictions)} predictions but {len(actuals)} telemetry rows")
    events = []
    for offset, (prediction, actual) in enumerate(zip(predictions.tolist(), actuals.tolist(), strict=True)):
        events.extend(state.update(params.l_s + offset, prediction, actual))
    events.extend(state.finish())
    return [ScoredRange(e.start, e.end, e.score) for e in events if e.status == "closed"]


def channel_detections(
    kind: DetectorKind,
    channel: str,
    predictions: np.ndarray,
    telemetry: np.ndarray,
    params: ThresholdParameters,
) -> list[ScoredRange]:
    """One channel's detections by the chosen detector, with the 2018 run's C-2 exception."""
    backfill = channel not in REFERENCE_RUN_NO_BACKFILL
    if kind == "batch":
        return batch_detections(predictions, telemetry, params, backfill)
    return stream_detections(channel, predictions, telemetry, params, backfill)
