"""Stateful inference (one LSTM step per point): against the 2018 predictions, the windowed engine,
and itself under any batching; the mode verdict and its tags; the guard's offline twin."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from model_store.engine import InferenceEngine
from model_store.exceptions import InputError
from model_store.inference_mode import ModeVerdict
from model_store.keras2_h5 import read_keras2_h5
from model_store.mode_measurement import guarded_series, measure_mode
from model_store.weights import LstmLayer, LstmWeights
from producers.dataset import TelemanomDataset


@pytest.fixture(scope="module")
def engine() -> InferenceEngine:
    return InferenceEngine()


@pytest.mark.parametrize(
    ("channel", "mode"), [("A-1", "stateful"), ("D-14", "stateful"), ("P-1", "windowed")]
)
def test_the_verdict_on_the_train_split_and_the_2018_predictions(
    nasa: TelemanomDataset, reference_dir: Path, engine: InferenceEngine, channel: str, mode: str
) -> None:
    """A-1 and D-14 forget their initial state: the carried state reproduces the 2018 windowed
    y_hat to float32 noise. P-1 does not, and its verdict says windows."""
    weights = read_keras2_h5(reference_dir / "models" / f"{channel}.h5", channel)
    verdict = measure_mode(engine, weights, nasa.load(channel, split="train"))
    assert verdict.mode == mode
    test = nasa.load(channel)
    y_hat = np.load(reference_dir / "y_hat" / f"{channel}.npy").ravel()
    carried = engine.predict_series_carried(weights, test)[: len(y_hat)]
    difference = float(np.max(np.abs(carried - y_hat)))
    assert (difference <= 1e-5) == (mode == "stateful"), difference


def test_rows_batched_any_way_give_the_same_bits(
    synth: TelemanomDataset, small_model: Callable[[str], LstmWeights], engine: InferenceEngine
) -> None:
    """A channel's carried predictions do not depend on how its rows are cut into calls or which
    channels share a call: what a snapshot restores continues bit for bit."""
    rows = {channel: synth.load(channel)[:900] for channel in ("P-1", "D-14")}
    weights = {channel: small_model(channel) for channel in rows}
    (whole,) = engine.carry_many([(weights["P-1"], rows["P-1"], None)])
    rng = np.random.default_rng(7)
    cuts = np.sort(rng.choice(np.arange(1, 900), 12, replace=False))
    carry: np.ndarray | None = None
    parts = []
    for start, stop in zip([0, *cuts], [*cuts, 900], strict=True):
        mixed = engine.carry_many(
            [
                (weights["D-14"], rows["D-14"][: 1 + stop - start], None),
                (weights["P-1"], rows["P-1"][start:stop], carry),
            ]
        )
        parts.append(mixed[1].predictions)
        carry = mixed[1].carry
    assert np.array_equal(np.concatenate(parts), whole.predictions)
    assert carry is not None and np.array_equal(carry, whole.carry)


def test_the_first_window_from_a_zero_state_is_the_windowed_prediction(
    synth: TelemanomDataset, small_model: Callable[[str], LstmWeights], engine: InferenceEngine
) -> None:
    weights = small_model("E-1")
    rows = synth.load("E-1")[:251]
    assert (
        abs(engine.predict_series_carried(weights, rows)[0] - engine.predict_series(weights, rows)[0]) < 1e-6
    )


def test_a_carried_state_of_another_shape_is_refused(
    synth: TelemanomDataset, small_model: Callable[[str], LstmWeights], engine: InferenceEngine
) -> None:
    weights = small_model("E-1")
    with pytest.raises(InputError, match="carried state of shape"):
        engine.carry_many([(weights, synth.load("E-1")[:5], np.zeros((2, 3), np.float32))])


def test_a_verdict_survives_its_tags_and_garbled_tags_mean_never_measured() -> None:
    verdict = ModeVerdict("stateful", 3.2e-7, 2880, 1e-5)
    assert ModeVerdict.from_tags(verdict.tags()) == ModeVerdict("stateful", 3.2e-7, 2880, 1e-5)
    assert ModeVerdict.from_tags({}) is None
    assert ModeVerdict.from_tags({**verdict.tags(), "inference_mode": "fast"}) is None
    assert ModeVerdict.from_tags({**verdict.tags(), "stateful_max_error": "n/a"}) is None


def remembering(weights: LstmWeights) -> LstmWeights:
    """The small model with a slow memory: layer 0's unit 1 keeps 99% of its cell per step (a
    timescale of 100 rows, so 8% of the state left after 250 rows) and feeds the prediction, so
    the carried state and the window disagree, as in the 2018 models that do not forget."""
    first, second = (
        LstmLayer(layer.kernel.copy(), layer.recurrent_kernel.copy(), layer.bias.copy())
        for layer in weights.layers
    )
    units = first.units
    for gate, bias in ((0, 5.0), (1, 2.45), (3, 5.0)):  # hard sigmoid: i = 1, f = 0.99, o = 1
        first.kernel[:, gate * units + 1] = first.recurrent_kernel[:, gate * units + 1] = 0.0
        first.bias[gate * units + 1] = bias
    first.kernel[:, 2 * units + 1] = first.recurrent_kernel[:, 2 * units + 1] = 0.0
    first.kernel[0, 2 * units + 1] = 0.1
    second.kernel[1, 2 * units] = 0.02  # layer 1's pass-through unit adds it to the prediction
    return dataclasses.replace(weights, layers=(first, second))


def test_the_guard_switches_at_the_first_check_past_the_tolerance(
    synth: TelemanomDataset, small_model: Callable[[str], LstmWeights], engine: InferenceEngine
) -> None:
    weights = remembering(small_model("E-1"))
    rows = synth.load("E-1")[:1800]
    windowed = engine.predict_series(weights, rows)
    carried = engine.predict_series_carried(weights, rows)
    drift = np.abs(windowed - carried)[::250]  # at the checked rows 250, 500, …
    assert drift[0] < 1e-6 < drift[1:].max()
    tolerance = float(np.sort(drift)[-2])  # the largest drift fails the check, the others pass
    predictions, switched = guarded_series(engine, weights, rows, verify_every=250, tolerance=tolerance)
    assert switched == 250 * (1 + int(np.argmax(drift)))
    at = switched - 250
    assert np.array_equal(predictions[: at + 1], carried[: at + 1])
    assert np.allclose(predictions[at + 1 :], windowed[at + 1 :], rtol=0, atol=1e-6)  # other BLAS spans
    unguarded, never = guarded_series(engine, weights, rows, tolerance=1.0)
    assert never is None and np.array_equal(unguarded, carried)
