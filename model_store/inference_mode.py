"""Which inference a model version gets: one LSTM step per point where that is exact, windows elsewhere.

This module holds the verdict and its tags (read wherever weights are loaded); the measurement is
``model_store.mode_measurement``.

Telemanom predicts each point from a window of the ``l_s`` rows before it, from a zero state: a
full ``l_s``-step pass per point. Most trained models forget their initial state within ``l_s``
steps, and for them the state carried from row to row gives the same prediction for one step's
cost. Whether a model does is measured, not assumed: on its train split, every window's
prediction against the carried one, float32, with the engine itself (``measure_mode``). The verdict
is stored with the version (MLflow tags, ``ModeVerdict.tags``) and checked again in the stream every
``verify_every`` points (the online guard, ``guarded_series`` is its offline twin).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

InferenceMode = Literal["stateful", "windowed"]
INFERENCE_MODES: tuple[InferenceMode, ...] = ("stateful", "windowed")
# float32 noise between the two computations is ≤4e-6 on the 2018 models that forget their start;
# the ones that do not differ by 2.5e-5 to 0.29
TOLERANCE = 1e-5
VERIFY_EVERY = 250

MODE_TAG = "inference_mode"
ERROR_TAG = "stateful_max_error"
ROWS_TAG = "mode_rows"
TOLERANCE_TAG = "mode_tolerance"


@dataclass(frozen=True)
class ModeVerdict:
    """The largest |stateful - windowed| over ``rows`` rows of a split, and the mode it allows."""

    mode: InferenceMode
    max_error: float
    rows: int
    tolerance: float

    def tags(self) -> dict[str, str]:
        return {
            MODE_TAG: self.mode,
            ERROR_TAG: f"{self.max_error:.6g}",
            ROWS_TAG: str(self.rows),
            TOLERANCE_TAG: f"{self.tolerance:g}",
        }

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> ModeVerdict | None:
        """The verdict a version's tags hold; None for a version never measured (or mis-tagged)."""
        mode = tags.get(MODE_TAG)
        if mode not in INFERENCE_MODES:
            return None
        try:
            error = float(tags[ERROR_TAG])
            return cls(mode, error, int(tags[ROWS_TAG]), float(tags[TOLERANCE_TAG]))
        except (KeyError, ValueError):
            return None

    def describe(self) -> str:
        """How the mode was chosen, for ``models list`` and the worker's ``/models``."""
        return f"{self.mode}: max |stateful - windowed| {self.max_error:.3g} over {self.rows} train rows"
