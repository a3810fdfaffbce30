"""Prediction errors and their EWMA smoothing, bit-compatible with ``pandas.ewm(span).mean()``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stream_workers.thresholding.parameters import ThresholdParameters


@dataclass
class EwmaState:
    """Running state of pandas' adjusted EWMA (``adjust=True``), updatable one error at a time.

    pandas keeps the weighted mean and the total weight of past values; repeating its exact
    floating-point steps makes the streamed values equal to the batch ones, not merely close.
    """

    span: int
    mean: float = 0.0
    weight: float = 0.0
    count: int = 0

    def update(self, value: float) -> float:
        """Fold one error in and return the smoothed value at that position."""
        if self.count == 0:
            self.mean, self.weight = value, 1.0
        else:
            self.weight *= 1.0 - 2.0 / (self.span + 1.0)
            if self.mean != value:
                self.mean = (self.weight * self.mean + value) / (self.weight + 1.0)
            self.weight += 1.0
        self.count += 1
        return self.mean


def prediction_errors(predictions: np.ndarray, actuals: np.ndarray) -> np.ndarray:
    """Absolute one-step-ahead errors |y_hat - y| (arrays of equal length)."""
    predictions = np.asarray(predictions, dtype=np.float64)
    actuals = np.asarray(actuals, dtype=np.float64)
    if predictions.shape != actuals.shape:
        raise ValueError(f"predictions {predictions.shape} and actuals {actuals.shape} differ in shape")
    return np.abs(predictions - actuals)


def ewma(errors: np.ndarray, span: int) -> np.ndarray:
    """pandas-compatible adjusted EWMA of a 1-D array."""
    state = EwmaState(span)
    return np.fromiter((state.update(float(e)) for e in errors), dtype=np.float64, count=len(errors))


def warmup_mean(smoothed: np.ndarray, l_s: int) -> float:
    """What the 2018 code writes over the first l_s smoothed errors: the mean of the first 2*l_s."""
    return float(np.mean(smoothed[: 2 * l_s]))


def smooth_errors(
    errors: np.ndarray, params: ThresholdParameters, backfill_warmup: bool = True
) -> np.ndarray:
    """Smoothed errors as Telemanom 2018 computed them (``get_errors``).

    errors: raw absolute errors, one per predicted test row (row l_s + i for error i).
    params: gives the EWMA span and l_s.
    backfill_warmup: overwrite the first l_s values with the mean of the first 2*l_s, because the
        EWMA has too little history there; the 2018 run skipped this for channel C-2 only.
    """
    smoothed = ewma(errors, params.smoothing_span)
    if backfill_warmup:
        smoothed[: params.l_s] = warmup_mean(smoothed, params.l_s)
    return smoothed
