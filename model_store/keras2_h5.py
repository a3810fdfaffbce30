"""Reading the 2018 Telemanom models (Keras 2.1.5 HDF5) into ``LstmWeights``.

Its own module so h5py loads only where a 2018 file is read (``models import-reference``, tests),
never in a worker, which loads registry versions (``.npz``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from model_store.exceptions import WeightsError
from model_store.weights import LstmLayer, LstmWeights, RecurrentActivation, float32_array

KERAS2_ACTIVATIONS: dict[str, RecurrentActivation] = {
    "hard_sigmoid": "hard_sigmoid_keras2",
    "sigmoid": "sigmoid",
}


def _layer_arrays(group: h5py.Group, layer: str, roles: tuple[str, ...]) -> dict[str, np.ndarray]:
    """A layer's arrays by role: by name suffix (``.../kernel:0``), else in Keras' stored order."""
    if layer not in group:
        raise KeyError(f"no weights group for layer {layer!r}")
    found: list[h5py.Dataset] = []
    group[layer].visititems(lambda _name, obj: found.append(obj) if isinstance(obj, h5py.Dataset) else None)
    stored = [_text(n) for n in group[layer].attrs.get("weight_names", [])]
    if stored:
        found = [group[layer][n] for n in stored]
    by_suffix = {d.name.rsplit("/", 1)[-1].split(":")[0]: d for d in found}
    if set(roles) <= set(by_suffix):
        return {role: float32_array(by_suffix[role][()]) for role in roles}
    if len(found) != len(roles):
        raise KeyError(f"layer {layer!r} holds {len(found)} weight arrays, expected {len(roles)}")
    return {role: float32_array(d[()]) for role, d in zip(roles, found, strict=True)}


def read_keras2_h5(
    path: Path, channel: str | None = None, expected_features: int | None = None
) -> LstmWeights:
    """Weights of a 2018 Telemanom model (Keras 2.1.5 HDF5).

    Layers are taken in the order of the stored model config, by class (LSTM, Dense), because
    their names (``lstm_1``, ``lstm_43``...) depend on what else that Keras session had built.
    """
    path = Path(path)
    label = channel or path.stem
    try:
        with h5py.File(path, "r") as handle:
            config = json.loads(_text(handle.attrs["model_config"]))
            weights_group = handle.get("model_weights", handle)
            layer_configs = config["config"]
            if isinstance(layer_configs, dict):
                layer_configs = layer_configs["layers"]
            lstm_layers: list[LstmLayer] = []
            activations: set[str] = set()
            dense: dict[str, np.ndarray] | None = None
            for layer in layer_configs:
                kind, cfg = layer["class_name"], layer["config"]
                if kind == "LSTM":
                    if dense is not None:
                        raise KeyError("an LSTM layer follows the Dense layer")
                    arrays = _layer_arrays(weights_group, cfg["name"], ("kernel", "recurrent_kernel", "bias"))
                    lstm_layers.append(LstmLayer(**arrays))
                    activations.add(cfg.get("recurrent_activation", "hard_sigmoid"))
                    if cfg.get("activation", "tanh") != "tanh":
                        raise KeyError(f"LSTM activation {cfg['activation']!r} is not tanh")
                elif kind == "Dense":
                    if cfg.get("activation", "linear") != "linear":
                        raise KeyError(f"Dense activation {cfg['activation']!r} is not linear")
                    dense = _layer_arrays(weights_group, cfg["name"], ("kernel", "bias"))
                elif kind == "Activation" and cfg.get("activation") != "linear":
                    raise KeyError(f"final activation {cfg.get('activation')!r} is not linear")
            if not lstm_layers or dense is None:
                raise KeyError("the model config has no LSTM or no Dense layer")
            if len(activations) != 1 or next(iter(activations)) not in KERAS2_ACTIVATIONS:
                raise KeyError(f"unsupported recurrent activation(s) {sorted(activations)}")
    except WeightsError:
        raise
    except (OSError, KeyError, ValueError, TypeError, IndexError, json.JSONDecodeError) as exc:
        raise WeightsError(f"channel {label}: cannot read Keras model file {path}: {exc}") from exc
    weights = LstmWeights(
        label,
        tuple(lstm_layers),
        dense["kernel"],
        dense["bias"],
        KERAS2_ACTIVATIONS[next(iter(activations))],
        source="reference",
        version="file",
    )
    if expected_features is not None and weights.n_features != expected_features:
        raise WeightsError(
            f"channel {label}: model file {path} expects {weights.n_features} input features, "
            f"the channel's data has {expected_features}"
        )
    return weights


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
