"""Plain parameter values for the pure cores, built from settings here so the cores never see settings."""

from __future__ import annotations

from stream_workers.thresholding.parameters import ThresholdParameters
from tmstream.ground.settings import Settings


def threshold_parameters(settings: Settings) -> ThresholdParameters:
    """The thresholding section plus the model's window (``l_s``, ``n_predictions``)."""
    threshold, model = settings.threshold, settings.model
    return ThresholdParameters(
        batch_size=threshold.batch_size,
        window_size=threshold.window_size,
        smoothing_perc=threshold.smoothing_perc,
        error_buffer=threshold.error_buffer,
        p=threshold.p,
        l_s=model.l_s,
        n_predictions=model.n_predictions,
    )
