"""What the detector saw on one channel, row by row: for plots and for explaining a miss.

The threshold drawn is the high-side epsilon (mean + z·sd of the window's smoothed errors) of the
window that decides each error: the first window decides everything up to its end, each later window
its newest ``batch_size`` errors (and, as in 2018, the one just past its end). Errors no window
decides (the 2018 batch's last-window gap) get NaN, so the plot shows the gap rather than hiding it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stream_workers.thresholding.batch import telemanom_targets, window_bounds
from stream_workers.thresholding.parameters import ThresholdParameters
from stream_workers.thresholding.smoothing import prediction_errors, smooth_errors
from stream_workers.thresholding.window import find_z


@dataclass(frozen=True)
class ChannelTrace:
    """Per predicted row: test-row index, telemetry, prediction, smoothed error and threshold."""

    rows: np.ndarray
    actual: np.ndarray
    prediction: np.ndarray
    smoothed: np.ndarray
    threshold: np.ndarray


def window_thresholds(smoothed: np.ndarray, params: ThresholdParameters) -> np.ndarray:
    """The high-side epsilon deciding each error (NaN where no window decides it)."""
    threshold = np.full(len(smoothed), np.nan)
    for k, (start, end) in enumerate(window_bounds(len(smoothed), params)):
        window = smoothed[start:end]
        epsilon = float(np.mean(window) + find_z(window, params.error_buffer) * np.std(window))
        decided_from = start if k == 0 else max(start, end - params.batch_size)
        threshold[decided_from : end + 1] = epsilon  # the 2018 bound lets a window flag error `end`
    return threshold


def channel_trace(
    predictions: np.ndarray, telemetry: np.ndarray, params: ThresholdParameters, backfill_warmup: bool
) -> ChannelTrace:
    """The batch detector's view of a channel (the stream's windows are the same but for the last)."""
    targets = telemanom_targets(telemetry, len(predictions), params)
    actual = targets[:, 0]
    smoothed = smooth_errors(prediction_errors(predictions, actual), params, backfill_warmup)
    return ChannelTrace(
        rows=np.arange(len(predictions)) + params.l_s,
        actual=actual,
        prediction=np.asarray(predictions, dtype=np.float64),
        smoothed=smoothed,
        threshold=window_thresholds(smoothed, params),
    )
