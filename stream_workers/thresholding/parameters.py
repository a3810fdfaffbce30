"""The thresholding parameters as one immutable value, so the cores take no global configuration."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ThresholdParameters:
    """Telemanom's thresholding parameters (KDD 2018 defaults).

    batch_size: errors per batch; a threshold is searched every batch_size new errors.
    window_size: batches of history in one threshold window (h = batch_size * window_size errors).
    smoothing_perc: EWMA span as a share of h (span = h * smoothing_perc = 105).
    error_buffer: errors either side of an anomalous error that join its sequence (offsets up to
        error_buffer - 1, as in the 2018 code's ``range(0, error_buffer)``).
    p: minimum relative drop between neighbouring sequence peaks for them to survive pruning.
    l_s: the model's input length; the first error belongs to test row l_s, and the first l_s
        smoothed errors are warm-up values.
    n_predictions: values predicted per step; the batch gates read n_predictions targets per error.
    """

    batch_size: int = 70
    window_size: int = 30
    smoothing_perc: float = 0.05
    error_buffer: int = 100
    p: float = 0.13
    l_s: int = 250
    n_predictions: int = 10

    @property
    def window_length(self) -> int:
        """Errors in one full threshold window (h)."""
        return self.batch_size * self.window_size

    @property
    def smoothing_span(self) -> int:
        """EWMA span; truncated to an integer as in the 2018 code (70 * 30 * 0.05 = 105)."""
        return int(self.batch_size * self.window_size * self.smoothing_perc)
