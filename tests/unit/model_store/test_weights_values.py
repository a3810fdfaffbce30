"""A poisoned champion (NaN, infinite, huge or all-zero weights) is refused wherever weights are
made: when a model is built for registration and when a stored artifact is loaded."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

from model_store.exceptions import WeightsError
from model_store.weights import LstmLayer, LstmWeights, load_npz, save_npz
from tests.conftest import persistence_model


def poisoned(weights: LstmWeights, how: str) -> dict[str, np.ndarray]:
    arrays = {name: array.copy() for name, array in weights.arrays().items()}
    if how == "nan":
        arrays["lstm1_recurrent_kernel"][3, 7] = np.nan
    elif how == "inf":
        arrays["dense_kernel"][0, 0] = np.inf
    elif how == "huge":
        arrays["lstm0_kernel"][0, 0] = 1e30
    else:  # every kernel zero
        arrays = {name: np.zeros_like(a) if "kernel" in name else a for name, a in arrays.items()}
    return arrays


def rebuilt(weights: LstmWeights, arrays: dict[str, np.ndarray]) -> LstmWeights:
    layers = tuple(
        LstmLayer(arrays[f"lstm{n}_kernel"], arrays[f"lstm{n}_recurrent_kernel"], arrays[f"lstm{n}_bias"])
        for n in range(len(weights.layers))
    )
    return dataclasses.replace(
        weights, layers=layers, dense_kernel=arrays["dense_kernel"], dense_bias=arrays["dense_bias"]
    )


MESSAGES = {
    "nan": "lstm1_recurrent_kernel holds NaN or infinite weights",
    "inf": "dense_kernel holds NaN or infinite weights",
    "huge": "lstm0_kernel holds a weight of 1e+30, over 1000",
    "zero": "every kernel is zero",
}


@pytest.mark.parametrize("how", sorted(MESSAGES))
def test_a_poisoned_model_cannot_be_built_for_registration(how: str) -> None:
    weights = persistence_model("P-1", 25)
    with pytest.raises(WeightsError, match=re.escape(f"channel P-1: {MESSAGES[how]}")):
        rebuilt(weights, poisoned(weights, how))


@pytest.mark.parametrize("how", sorted(MESSAGES))
def test_a_poisoned_artifact_is_refused_at_load(tmp_path: Path, how: str) -> None:
    """The stored file was altered after registration: the loader names the channel and the array."""
    weights = persistence_model("P-1", 25)
    path = tmp_path / "weights.npz"
    save_npz(weights, path)
    with np.load(path) as stored:
        entries = {name: stored[name] for name in stored.files}
    entries.update(poisoned(weights, how))
    np.savez(path, **entries)
    with pytest.raises(WeightsError, match=re.escape(f"channel P-1: {MESSAGES[how]}")):
        load_npz(path, "P-1")


def test_a_sound_model_loads_back_equal(tmp_path: Path) -> None:
    weights = persistence_model("P-1", 25)
    save_npz(weights, tmp_path / "weights.npz")
    assert load_npz(tmp_path / "weights.npz", "P-1").content_hash() == weights.content_hash()
