"""The measurement behind a ``ModeVerdict``, and the online guard's offline twin (pure: engine only)."""

from __future__ import annotations

import math

import numpy as np

from model_store.engine import InferenceEngine
from model_store.inference_mode import TOLERANCE, VERIFY_EVERY, ModeVerdict
from model_store.weights import LstmWeights


def measure_mode(
    engine: InferenceEngine, weights: LstmWeights, rows: np.ndarray, tolerance: float = TOLERANCE
) -> ModeVerdict:
    """Every window of ``rows`` (a channel's train split) predicted both ways; ``stateful`` when
    the largest difference is within ``tolerance``. A split of at most ``l_s`` rows has no window
    to compare: ``windowed``, the exact mode."""
    rows = np.asarray(rows, dtype=np.float32)
    if len(rows) <= weights.l_s:
        return ModeVerdict("windowed", math.inf, len(rows), tolerance)
    windowed = engine.predict_series(weights, rows)
    carried = engine.predict_series_carried(weights, rows)
    error = float(np.max(np.abs(windowed - carried)))
    return ModeVerdict("stateful" if error <= tolerance else "windowed", error, len(rows), tolerance)


def guarded_series(
    engine: InferenceEngine,
    weights: LstmWeights,
    rows: np.ndarray,
    verify_every: int = VERIFY_EVERY,
    tolerance: float = TOLERANCE,
) -> tuple[np.ndarray, int | None]:
    """What a stateful channel's stream predicts for rows l_s…T-1 of one uninterrupted pass, and
    the row at which the guard switched it to windows (None if it never did).

    The guard compares the two computations at every row whose index is a multiple of
    ``verify_every``; from the first row past the tolerance, the rows after it are windowed.
    """
    rows = np.asarray(rows, dtype=np.float32)
    carried = engine.predict_series_carried(weights, rows)
    l_s = weights.l_s
    checked = list(range(-(-l_s // verify_every) * verify_every, len(rows), verify_every))
    exact = engine.predict_series_many([(weights, rows[row - l_s : row + 1]) for row in checked])
    for row, window in zip(checked, exact, strict=True):
        if abs(carried[row - l_s] - window[0]) > tolerance:
            rest = rows[row + 1 - l_s :]
            after = engine.predict_series(weights, rest) if len(rest) > l_s else carried[:0]
            return np.concatenate([carried[: row - l_s + 1], after]), row
    return carried, None
