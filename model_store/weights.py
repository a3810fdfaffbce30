"""LSTM weights as plain float32 arrays, read from Keras 2 HDF5 files or ``.npz`` without TensorFlow.

The worker loads these into the NumPy engine; keeping them framework-free keeps it small (no TF).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from model_store.exceptions import WeightsError
from model_store.inference_mode import InferenceMode, ModeVerdict
from model_store.scaling import InputScaling, ScalingError

RecurrentActivation = Literal["hard_sigmoid_keras2", "sigmoid"]
RECURRENT_ACTIVATIONS: tuple[RecurrentActivation, ...] = ("hard_sigmoid_keras2", "sigmoid")
# The 82 reference models of 2018 stay under 1.15 in absolute value; a weight past this saturates
# every gate and is a damaged or poisoned artifact, not a model.
MAX_ABS_WEIGHT = 1_000.0


@dataclass(frozen=True)
class LstmLayer:
    """One LSTM layer, Keras gate order i, f, c, o along the last axis."""

    kernel: np.ndarray  # (inputs, 4H)
    recurrent_kernel: np.ndarray  # (H, 4H)
    bias: np.ndarray  # (4H,)

    @property
    def units(self) -> int:
        return int(self.recurrent_kernel.shape[0])


@dataclass(frozen=True)
class LstmWeights:
    """A Telemanom model: stacked LSTMs, then a linear Dense whose output[0] is the prediction."""

    channel: str
    layers: tuple[LstmLayer, ...]
    dense_kernel: np.ndarray  # (H_last, n_predictions)
    dense_bias: np.ndarray  # (n_predictions,)
    recurrent_activation: RecurrentActivation
    l_s: int = 250
    source: str = "reference"
    version: str = "file"
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    # what the registry measured for this version (None: never measured, so windows, the exact mode)
    verdict: ModeVerdict | None = field(default=None, compare=False)
    # how the channel's rows become this model's input (None: the identity, as for the NASA data)
    scaling: InputScaling | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.recurrent_activation not in RECURRENT_ACTIVATIONS:
            raise WeightsError(
                f"channel {self.channel}: unknown recurrent activation {self.recurrent_activation!r}"
            )
        if not self.layers:
            raise WeightsError(f"channel {self.channel}: a model needs at least one LSTM layer")
        width = self.layers[0].kernel.shape[0]
        for number, layer in enumerate(self.layers, start=1):
            units = layer.units
            expected = {
                "kernel": (width, 4 * units),
                "recurrent_kernel": (units, 4 * units),
                "bias": (4 * units,),
            }
            for name, shape in expected.items():
                if getattr(layer, name).shape != shape:
                    raise WeightsError(
                        f"channel {self.channel}: LSTM layer {number} {name} has shape "
                        f"{getattr(layer, name).shape}, expected {shape}"
                    )
            width = units
        if self.dense_kernel.ndim != 2 or self.dense_kernel.shape[0] != width:
            raise WeightsError(
                f"channel {self.channel}: dense kernel shape {self.dense_kernel.shape} does not "
                f"follow an LSTM of {width} units"
            )
        if self.dense_bias.shape != (self.dense_kernel.shape[1],):
            raise WeightsError(
                f"channel {self.channel}: dense bias shape {self.dense_bias.shape}, expected "
                f"({self.dense_kernel.shape[1]},)"
            )
        if self.scaling is not None and self.scaling.features != self.n_features:
            raise WeightsError(
                f"channel {self.channel}: input scaling has {self.scaling.features} features, "
                f"the model {self.n_features}"
            )
        self._check_values()

    def _check_values(self) -> None:
        """Numbers a trained model can hold: finite, within ``MAX_ABS_WEIGHT``, not all zero (a
        zero model predicts its bias forever and would score every channel as calm). Checked
        wherever weights are made: at registration and at every load."""
        zero = True
        for name, array in self.arrays().items():
            if not np.isfinite(array).all():
                raise WeightsError(f"channel {self.channel}: {name} holds NaN or infinite weights")
            peak = float(np.abs(array).max(initial=0.0))
            if peak > MAX_ABS_WEIGHT:
                raise WeightsError(
                    f"channel {self.channel}: {name} holds a weight of {peak:.4g}, over {MAX_ABS_WEIGHT:g}"
                )
            zero = zero and (peak == 0.0 or name.endswith("bias"))
        if zero:
            raise WeightsError(f"channel {self.channel}: every kernel is zero")

    @property
    def inference_mode(self) -> InferenceMode:
        return self.verdict.mode if self.verdict is not None else "windowed"

    @property
    def input_scaling(self) -> InputScaling:
        return self.scaling if self.scaling is not None else InputScaling.identity(self.n_features)

    @property
    def n_features(self) -> int:
        return int(self.layers[0].kernel.shape[0])

    @property
    def n_predictions(self) -> int:
        return int(self.dense_kernel.shape[1])

    @property
    def units(self) -> list[int]:
        return [layer.units for layer in self.layers]

    @property
    def nbytes(self) -> int:
        arrays = [self.dense_kernel, self.dense_bias]
        for layer in self.layers:
            arrays += [layer.kernel, layer.recurrent_kernel, layer.bias]
        return sum(a.nbytes for a in arrays)

    def metadata(self) -> dict[str, Any]:
        """The small JSON stored next to the arrays: what the engine needs besides numbers."""
        meta: dict[str, Any] = {
            "channel": self.channel,
            "recurrent_activation": self.recurrent_activation,
            "features": self.n_features,
            "units": self.units,
            "n_predictions": self.n_predictions,
            "l_s": self.l_s,
            "source": self.source,
        }
        if self.scaling is not None:
            meta["input_scaling"] = self.scaling.as_dict()
        return meta

    def arrays(self) -> dict[str, np.ndarray]:
        named = {"dense_kernel": self.dense_kernel, "dense_bias": self.dense_bias}
        for number, layer in enumerate(self.layers):
            named[f"lstm{number}_kernel"] = layer.kernel
            named[f"lstm{number}_recurrent_kernel"] = layer.recurrent_kernel
            named[f"lstm{number}_bias"] = layer.bias
        return named

    def content_hash(self) -> str:
        """sha256 over the arrays and the activation: equal models hash equal across files."""
        digest = hashlib.sha256(self.recurrent_activation.encode())
        for name, array in sorted(self.arrays().items()):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(array, dtype=np.float32).tobytes())
        return digest.hexdigest()

    def with_version(
        self,
        version: str,
        source: str | None = None,
        verdict: ModeVerdict | None = None,
        scaling: InputScaling | None = None,
    ) -> LstmWeights:
        return LstmWeights(
            self.channel,
            self.layers,
            self.dense_kernel,
            self.dense_bias,
            self.recurrent_activation,
            self.l_s,
            source or self.source,
            version,
            self.extra,
            verdict or self.verdict,
            scaling or self.scaling,
        )


def float32_array(array: Any) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(array, dtype=np.float32))


def save_npz(weights: LstmWeights, path: Path) -> None:
    """Write arrays and metadata to one ``.npz`` (metadata as a JSON string entry)."""
    buffer = io.BytesIO()
    entries = {"metadata": np.array(json.dumps(weights.metadata())), **weights.arrays()}
    np.savez(buffer, **entries)  # type: ignore[arg-type]
    Path(path).write_bytes(buffer.getvalue())


def load_npz(path: Path, channel: str | None = None, version: str = "file") -> LstmWeights:
    """Read what :func:`save_npz` wrote; a damaged file is a :class:`WeightsError`."""
    path = Path(path)
    label = channel or path.stem
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["metadata"]))
            layers = tuple(
                LstmLayer(
                    float32_array(data[f"lstm{n}_kernel"]),
                    float32_array(data[f"lstm{n}_recurrent_kernel"]),
                    float32_array(data[f"lstm{n}_bias"]),
                )
                for n in range(len(meta["units"]))
            )
            return LstmWeights(
                channel or meta["channel"],
                layers,
                float32_array(data["dense_kernel"]),
                float32_array(data["dense_bias"]),
                meta["recurrent_activation"],
                int(meta["l_s"]),
                meta.get("source", "trained"),
                version,
                scaling=_scaling(meta, label),
            )
    except WeightsError:
        raise
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        raise WeightsError(f"channel {label}: cannot read weights file {path}: {exc}") from exc


def _scaling(meta: dict[str, Any], label: str) -> InputScaling | None:
    if "input_scaling" not in meta:
        return None
    try:
        return InputScaling.from_json(json.dumps(meta["input_scaling"]), label)
    except ScalingError as exc:
        raise WeightsError(str(exc)) from exc
