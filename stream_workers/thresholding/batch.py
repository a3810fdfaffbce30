"""Telemanom's batch thresholding as run for the KDD 2018 paper (``process_errors`` of May 2018).

A whole channel's predictions are known up front: errors are smoothed (with a back-filled warm-up),
windows of ``window_size * batch_size`` errors are evaluated every ``batch_size`` errors, the last
window stretches to the end of the channel, and flagged errors are grouped into sequences.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stream_workers.thresholding.parameters import ThresholdParameters
from stream_workers.thresholding.smoothing import prediction_errors, smooth_errors
from stream_workers.thresholding.window import WindowContext, evaluate_window, sequences_of

LONG_CHANNEL = 2500
"""Channels with at least this many errors ignore 2*l_s warm-up errors in their first window."""
SHORT_CHANNEL = 1800
"""Channels with at least this many (under LONG_CHANNEL) errors ignore l_s; shorter: none."""


@dataclass(frozen=True)
class AnomalySequence:
    """A detected anomaly: inclusive test-row range and the 2018 score."""

    start: int
    end: int
    score: float


@dataclass(frozen=True)
class BatchDetection:
    """Everything the batch run decided for one channel.

    smoothed_errors: the smoothed errors, one per predicted test row (error i is row l_s + i).
    flagged: flagged error indices (may include len(smoothed_errors), the 2018 off-by-one).
    sequences: the anomalies in test-row indices, shifted by l_s from the error indices.
    """

    smoothed_errors: np.ndarray
    flagged: np.ndarray
    sequences: tuple[AnomalySequence, ...]


def warmup_length(error_count: int, l_s: int) -> int:
    """Errors the first window may not flag: 2*l_s, or less for short channels (2018 rule)."""
    if error_count >= LONG_CHANNEL:
        return 2 * l_s
    if error_count >= SHORT_CHANNEL:
        return l_s
    return 0


def window_bounds(error_count: int, params: ThresholdParameters) -> list[tuple[int, int]]:
    """(start, end) of each window: one every batch_size errors, the last one reaching the end.

    A channel shorter than one window is evaluated as a single window over everything.
    """
    if error_count <= 0:
        raise ValueError("no errors to threshold")
    full_windows = max(0, (error_count - params.window_length) // params.batch_size)
    bounds = [
        (k * params.batch_size, params.window_length + k * params.batch_size) for k in range(full_windows)
    ]
    bounds.append((full_windows * params.batch_size, error_count))
    return bounds


def telemanom_targets(telemetry: np.ndarray, error_count: int, params: ThresholdParameters) -> np.ndarray:
    """Telemanom's 2-D ``y_test``: row i holds telemetry rows l_s+i .. l_s+i+n_predictions-1.

    telemetry: the channel's test telemetry column (test[:, 0]).
    error_count: number of predictions (rows of the result).
    """
    needed = params.l_s + error_count + params.n_predictions - 1
    if len(telemetry) < needed:
        raise ValueError(f"telemetry has {len(telemetry)} rows, {needed} needed for {error_count} errors")
    windows = np.lib.stride_tricks.sliding_window_view(telemetry[params.l_s :], params.n_predictions)
    return windows[:error_count]


def threshold_errors(
    smoothed: np.ndarray, targets: np.ndarray, params: ThresholdParameters
) -> tuple[np.ndarray, float]:
    """Flag smoothed errors window by window: the flagged error indices and the last window's z.

    smoothed: smoothed errors of the whole channel.
    targets: per error, the telemetry it predicted (1-D, or 2-D rows as Telemanom's y_test).
    params: thresholding parameters.
    """
    count = len(smoothed)
    flagged = np.zeros(count + 1, dtype=bool)
    ignore = warmup_length(count, params.l_s)
    last_z = 0.0
    for k, (start, end) in enumerate(window_bounds(count, params)):
        adjusted = np.arange(end - start) + (k - 1) * params.batch_size
        known = (adjusted >= 0) & (adjusted <= count)
        flagged_before = np.zeros(end - start, dtype=bool)
        flagged_before[known] = flagged[adjusted[known]]
        context = WindowContext(window=k, ignore_before=ignore, flagged_before=flagged_before)
        result = evaluate_window(smoothed[start:end], targets[start:end], context, params)
        flagged[result.indices + start] = True
        last_z = result.high.z
    return np.flatnonzero(flagged), last_z


def score_sequences(smoothed: np.ndarray, sequences: list[tuple[int, int]], last_z: float) -> list[float]:
    """The 2018 scores: max |e_s - z| per sequence (end excluded) / (mean + sd of all errors).

    The 2018 code subtracts the last window's z (a number of standard deviations, not an error
    value); kept as is so scores match the published run's.
    """
    scale = np.mean(smoothed) + np.std(smoothed)
    return [float(np.max(np.abs(smoothed[start:end] - last_z)) / scale) for start, end in sequences]


def detect_batch(
    predictions: np.ndarray,
    telemetry: np.ndarray,
    params: ThresholdParameters,
    backfill_warmup: bool = True,
) -> BatchDetection:
    """Run the 2018 batch thresholding on one channel.

    predictions: y_hat, prediction i is for test row l_s + i.
    telemetry: the channel's test telemetry column (test[:, 0]), at least
        l_s + len(predictions) + n_predictions - 1 rows.
    params: thresholding parameters.
    backfill_warmup: see ``smooth_errors`` (False reproduces the 2018 run's channel C-2).
    """
    predictions = np.asarray(predictions, dtype=np.float64).ravel()
    telemetry = np.asarray(telemetry, dtype=np.float64)
    targets = telemanom_targets(telemetry, len(predictions), params)
    errors = prediction_errors(predictions, targets[:, 0])
    smoothed = smooth_errors(errors, params, backfill_warmup)
    flagged, last_z = threshold_errors(smoothed, targets, params)
    runs = sequences_of(flagged)
    scores = score_sequences(smoothed, runs, last_z)
    sequences = tuple(
        AnomalySequence(start + params.l_s, end + params.l_s, score)
        for (start, end), score in zip(runs, scores, strict=True)
    )
    return BatchDetection(smoothed_errors=smoothed, flagged=flagged, sequences=sequences)
