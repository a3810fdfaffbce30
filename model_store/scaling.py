"""A model's input scaling: how a channel's rows, as its source sends them, become the model's input.

The NASA data arrive already scaled to [-1, 1] (with the test split's own min/max, a property of the
published set), so their models keep the identity. A live channel sends engineering units; its
scaling is fitted on the training history, stored with the model version (in the weights artifact
and as the ``input_scaling`` tag) and applied by the worker and by offline evaluation alike, so the
prediction, the error and the threshold live in the model's units whatever the source sends.

The transform also moves the channel's telemetry value (``value_column``) to column 0, where the
engine's prediction and the stream's error expect it. Pure NumPy: the scoring core holds it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

TAG = "input_scaling"
# Telemanom's published data sit in [-1, 1]; a fitted scaling maps the training range there too
LOW, HIGH = -1.0, 1.0


class ScalingError(ValueError):
    """A scaling that cannot be fitted or read (names the channel and the value)."""


@dataclass(frozen=True, eq=False)
class InputScaling:
    """``model_row = (row[order] - offset) / scale`` with ``order`` putting ``value_column`` first."""

    value_column: int
    offset: np.ndarray  # (features,) float64, in the source's column order
    scale: np.ndarray  # (features,) float64, > 0

    def __post_init__(self) -> None:
        if self.offset.shape != self.scale.shape or self.offset.ndim != 1:
            raise ScalingError(f"offset {self.offset.shape} and scale {self.scale.shape} must be equal 1-D")
        if not 0 <= self.value_column < len(self.offset):
            raise ScalingError(f"value_column {self.value_column} is outside {len(self.offset)} features")
        if not (np.isfinite(self.offset).all() and np.isfinite(self.scale).all() and (self.scale > 0).all()):
            raise ScalingError("offset and scale must be finite, scale > 0")

    @classmethod
    def identity(cls, features: int, value_column: int = 0) -> InputScaling:
        return cls(value_column, np.zeros(features), np.ones(features))

    @classmethod
    def fit(cls, rows: np.ndarray, value_column: int = 0) -> InputScaling:
        """Min/max of the training history onto [-1, 1] per column; a constant column (a command
        flag that never moved) keeps its scale, so it maps to 0 rather than dividing by zero."""
        data = np.asarray(rows, dtype=np.float64)
        if data.ndim != 2 or len(data) == 0:
            raise ScalingError(f"cannot fit a scaling on an array of shape {data.shape}")
        low, high = data.min(axis=0), data.max(axis=0)
        span = high - low
        scale = np.where(span > 0, span / (HIGH - LOW), 1.0)
        offset = np.where(span > 0, low - LOW * scale, low)
        return cls(value_column, offset, scale)

    @property
    def features(self) -> int:
        return len(self.offset)

    @property
    def is_identity(self) -> bool:
        return self.value_column == 0 and not self.offset.any() and bool((self.scale == 1).all())

    def apply(self, rows: np.ndarray) -> np.ndarray:
        """Model rows (float32, value first). The identity returns ``rows`` itself: the NASA
        channels' inputs stay bit-for-bit what they were, so the 2018 ``y_hat`` still reproduces."""
        if self.is_identity:
            return rows
        order = self.order()
        scaled = (np.asarray(rows, dtype=np.float64)[..., order] - self.offset[order]) / self.scale[order]
        return np.ascontiguousarray(scaled, dtype=np.float32)

    def value_to_units(self, value: float) -> float:
        """A model-unit telemetry value back in the source's units (for events and boards)."""
        return float(value) * float(self.scale[self.value_column]) + float(self.offset[self.value_column])

    def order(self) -> np.ndarray:
        rest = [c for c in range(self.features) if c != self.value_column]
        return np.array([self.value_column, *rest])

    def as_dict(self) -> dict[str, Any]:
        return {
            "value_column": self.value_column,
            "offset": [float(v) for v in self.offset],
            "scale": [float(v) for v in self.scale],
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str, channel: str = "?") -> InputScaling:
        try:
            body = json.loads(text)
            return cls(
                int(body["value_column"]),
                np.asarray(body["offset"], dtype=np.float64),
                np.asarray(body["scale"], dtype=np.float64),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ScalingError(f"channel {channel}: unreadable {TAG} {text[:80]!r}: {exc}") from exc

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, InputScaling)
            and self.value_column == other.value_column
            and np.array_equal(self.offset, other.offset)
            and np.array_equal(self.scale, other.scale)
        )

    def __hash__(self) -> int:
        return hash((self.value_column, self.offset.tobytes(), self.scale.tobytes()))
