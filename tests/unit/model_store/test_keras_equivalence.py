"""Keras 3 models built from settings and the NumPy engine compute the same function."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from model_store.engine import InferenceEngine
from model_store.keras2_h5 import read_keras2_h5
from model_store.training import training_windows
from model_store.weights import LstmWeights
from producers.dataset import TelemanomDataset
from tmstream.ground.settings import Settings

keras = pytest.importorskip("keras")


def _windows(rows: np.ndarray, l_s: int, count: int) -> np.ndarray:
    view = np.lib.stride_tricks.sliding_window_view(rows, l_s, axis=0)[:count]
    return np.ascontiguousarray(np.moveaxis(view, -1, 1), dtype=np.float32)


def test_sigmoid_model_from_settings_matches_engine(test_settings: Settings, synth: TelemanomDataset) -> None:
    from model_store.keras_model import build_model, to_lstm_weights

    settings = test_settings.model.model_copy(update={"layers": [24, 16], "l_s": 60})
    keras.utils.set_random_seed(3)
    model = build_model(settings, 25)
    weights = to_lstm_weights(model, "P-1", settings.l_s)
    assert weights.recurrent_activation == "sigmoid"
    assert weights.units == [24, 16] and weights.n_predictions == settings.n_predictions
    rows = synth.load("P-1", "test")[:400]
    expected = model.predict(_windows(rows, 60, 340), verbose=0)[:, 0]
    predicted = InferenceEngine().predict_series(weights, rows)
    assert np.abs(predicted - expected).max() <= 1e-5
    assert np.std(expected) > 1e-3  # a constant output would make the comparison vacuous


def test_keras2_hard_sigmoid_model_reproduces_2018(
    test_settings: Settings, nasa: TelemanomDataset, reference_dir: Path
) -> None:
    from model_store.keras_model import from_lstm_weights, to_lstm_weights

    weights = read_keras2_h5(reference_dir / "models" / "T-10.h5", "T-10")
    model = from_lstm_weights(weights, test_settings.model)
    assert to_lstm_weights(model, "T-10", 250, "reference").content_hash() == weights.content_hash()
    rows = nasa.load("T-10", "test")
    reference = np.load(reference_dir / "y_hat" / "T-10.npy")
    predicted = model.predict(_windows(rows, 250, 64), verbose=0)[:, 0]
    assert np.abs(predicted - reference[:64]).max() <= 1e-5


def test_keras2_hard_sigmoid_model_from_small_weights_matches_engine(
    test_settings: Settings, synth: TelemanomDataset, small_model: Callable[[str], LstmWeights]
) -> None:
    from model_store.keras_model import from_lstm_weights, to_lstm_weights

    weights = small_model("T-10")
    model = from_lstm_weights(weights, test_settings.model)
    assert to_lstm_weights(model, "T-10", 250, "synthetic").content_hash() == weights.content_hash()
    rows = synth.load("T-10", "test")[:400]
    expected = model.predict(_windows(rows, 250, 150), verbose=0)[:, 0]
    assert np.abs(InferenceEngine().predict_series(weights, rows)[:150] - expected).max() <= 1e-5


def test_training_windows_follow_telemanom_layout(test_settings: Settings) -> None:
    settings = test_settings.model.model_copy(update={"l_s": 5, "n_predictions": 3})
    train = np.arange(40, dtype=np.float64).reshape(20, 2)  # row r = (2r, 2r + 1)
    windows = training_windows(train, settings, "X-1")
    assert windows.inputs.shape == (12, 5, 2) and windows.targets.shape == (12, 3)
    starts = windows.inputs[:, 0, 0] / 2
    assert sorted(starts.astype(int)) == list(range(12))
    for start, inputs, targets in zip(starts.astype(int), windows.inputs, windows.targets, strict=True):
        np.testing.assert_array_equal(inputs, train[start : start + 5])
        np.testing.assert_array_equal(targets, train[start + 5 : start + 8, 0])
