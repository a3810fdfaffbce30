"""The engine against the 2018 predictions (y_hat), the real oracle; what needs no oracle (input
checks, threads, batching, the narrow loop against BLAS) also on the synthetic set's small models."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from model_store.engine import NARROW_WINDOWS, InferenceEngine
from model_store.exceptions import InputError
from model_store.keras2_h5 import read_keras2_h5
from model_store.weights import LstmWeights
from producers.dataset import TelemanomDataset

TOLERANCE = 1e-5
SMALLEST = ["T-10", "T-9", "T-8"]  # fewest test rows (670, 1096, 1519)


@pytest.fixture(scope="module")
def engine() -> InferenceEngine:
    return InferenceEngine()


def _weights(reference_dir: Path, channel: str) -> LstmWeights:
    return read_keras2_h5(reference_dir / "models" / f"{channel}.h5", channel)


def _max_error(engine: InferenceEngine, nasa: TelemanomDataset, reference_dir: Path, channel: str) -> float:
    weights = _weights(reference_dir, channel)
    rows = nasa.load(channel, "test")
    reference = np.load(reference_dir / "y_hat" / f"{channel}.npy")
    predicted = engine.predict_series(weights, rows)
    assert predicted.shape == (len(rows) - 250,)
    assert len(reference) == len(rows) - 260
    return float(np.abs(predicted[: len(reference)] - reference).max())


@pytest.mark.parametrize("channel", SMALLEST)
def test_series_reproduces_2018_predictions(
    engine: InferenceEngine, nasa: TelemanomDataset, reference_dir: Path, channel: str
) -> None:
    assert _max_error(engine, nasa, reference_dir, channel) <= TOLERANCE


@pytest.mark.slow
def test_all_82_channels_reproduce_2018_predictions(
    engine: InferenceEngine, nasa: TelemanomDataset, reference_dir: Path
) -> None:
    errors = {channel: _max_error(engine, nasa, reference_dir, channel) for channel in nasa.channels}
    assert len(errors) == 82
    worst = max(errors, key=errors.__getitem__)
    assert errors[worst] <= TOLERANCE, f"{worst}: {errors[worst]:.2e}"


def test_windows_match_series_and_reference(
    engine: InferenceEngine, nasa: TelemanomDataset, reference_dir: Path
) -> None:
    weights = _weights(reference_dir, "T-10")
    rows = nasa.load("T-10", "test")
    reference = np.load(reference_dir / "y_hat" / "T-10.npy")
    windows = np.lib.stride_tricks.sliding_window_view(rows, 250, axis=0)[100:137]
    windows = np.moveaxis(windows, -1, 1)
    predicted = engine.predict_windows(weights, windows)
    assert predicted.shape == (37,)
    assert np.abs(predicted - reference[100:137]).max() <= TOLERANCE


def test_windows_match_series_on_a_synthetic_channel(
    engine: InferenceEngine, synth: TelemanomDataset, small_model: Callable[[str], LstmWeights]
) -> None:
    weights = small_model("T-10")
    rows = synth.load("T-10", "test")
    windows = np.lib.stride_tricks.sliding_window_view(rows, 250, axis=0)[100:137]
    predicted = engine.predict_windows(weights, np.moveaxis(windows, -1, 1))
    assert predicted.shape == (37,)
    assert np.abs(predicted - engine.predict_series(weights, rows)[100:137]).max() <= 1e-6


def test_single_thread_engine_gives_the_same_numbers(
    synth: TelemanomDataset, small_model: Callable[[str], LstmWeights]
) -> None:
    weights = small_model("T-10")
    rows = synth.load("T-10", "test")
    serial = InferenceEngine(threads=1, batch_size=64).predict_series(weights, rows)
    threaded = InferenceEngine(threads=2, batch_size=100).predict_series(weights, rows)
    np.testing.assert_allclose(serial, threaded, atol=1e-6)


def test_nan_window_is_rejected_naming_channel_and_version(
    engine: InferenceEngine, small_model: Callable[[str], LstmWeights]
) -> None:
    weights = small_model("T-10").with_version("7")
    windows = np.zeros((2, 250, 55))
    windows[1, 17, 0] = np.nan
    with pytest.raises(InputError, match="channel T-10 model version 7: input holds NaN or inf"):
        engine.predict_windows(weights, windows)
    rows = np.zeros((300, 55))
    rows[5, 3] = np.inf
    with pytest.raises(InputError, match="NaN or inf"):
        engine.predict_series(weights, rows)


@pytest.mark.parametrize("shape", [(2, 250, 25), (2, 249, 55), (250, 55)])
def test_wrong_window_shape_is_rejected(
    engine: InferenceEngine, small_model: Callable[[str], LstmWeights], shape: tuple[int, ...]
) -> None:
    weights = small_model("T-10")
    with pytest.raises(InputError, match=r"channel T-10 model version file: windows of shape"):
        engine.predict_windows(weights, np.zeros(shape))


def test_series_shorter_than_a_window_is_rejected(
    engine: InferenceEngine, small_model: Callable[[str], LstmWeights]
) -> None:
    weights = small_model("T-10")
    with pytest.raises(InputError, match="series of shape"):
        engine.predict_series(weights, np.zeros((250, 55)))


# (channel, rows of its test split): SMAP (25 features) and MSL (55) mixed, lengths 1 to 420 windows
MANY = [("T-10", 250 + 37), ("P-1", 250 + 1), ("T-9", 250 + 420), ("A-5", 250 + 6), ("T-8", 250 + 123)]


def _many_items(
    dataset: TelemanomDataset, model: Callable[[str], LstmWeights]
) -> list[tuple[LstmWeights, np.ndarray]]:
    return [(model(channel), dataset.load(channel, "test")[:rows]) for channel, rows in MANY]


@pytest.mark.parametrize(("threads", "batch_size"), [(None, 512), (1, 512), (2, 64)])
def test_many_channels_in_one_call_equal_their_own_calls_and_the_reference(
    nasa: TelemanomDataset, reference_dir: Path, threads: int | None, batch_size: int
) -> None:
    """Two architecture groups (SMAP, MSL); batch_size 64 also cuts the long channel into segments."""
    engine = InferenceEngine(threads=threads, batch_size=batch_size)
    try:
        items = _many_items(nasa, lambda channel: _weights(reference_dir, channel))
        many = engine.predict_series_many(items)
        assert [len(found) for found in many] == [rows - 250 for _, rows in MANY]
        for (weights, rows), found in zip(items, many, strict=True):
            alone = engine.predict_series(weights, rows)
            reference = np.load(reference_dir / "y_hat" / f"{weights.channel}.npy")
            assert found.dtype == np.float64
            assert np.abs(found - alone).max() <= 1e-6, weights.channel
            assert np.abs(found - reference[: len(found)]).max() <= TOLERANCE, weights.channel
    finally:
        engine.close()


@pytest.mark.parametrize(("threads", "batch_size"), [(None, 512), (2, 64)])
def test_many_synthetic_channels_in_one_call_equal_their_own_calls(
    synth: TelemanomDataset, small_model: Callable[[str], LstmWeights], threads: int | None, batch_size: int
) -> None:
    engine = InferenceEngine(threads=threads, batch_size=batch_size)
    try:
        items = _many_items(synth, small_model)
        many = engine.predict_series_many(items)
        assert [len(found) for found in many] == [rows - 250 for _, rows in MANY]
        for (weights, rows), found in zip(items, many, strict=True):
            assert found.dtype == np.float64
            assert np.abs(found - engine.predict_series(weights, rows)).max() <= 1e-6, weights.channel
    finally:
        engine.close()


def test_many_with_no_items_is_empty(engine: InferenceEngine) -> None:
    assert engine.predict_series_many([]) == []


def test_many_rejects_a_bad_series_naming_its_channel(
    engine: InferenceEngine, synth: TelemanomDataset, small_model: Callable[[str], LstmWeights]
) -> None:
    items = _many_items(synth, small_model)
    weights, rows = items[2]
    bad = rows.copy()
    bad[3, 1] = np.nan
    items[2] = (weights.with_version("4"), bad)
    with pytest.raises(InputError, match="channel T-9 model version 4: input holds NaN or inf"):
        engine.predict_series_many(items)
    items[2] = (weights, rows[:250])
    with pytest.raises(InputError, match="channel T-9 model version file: series of shape"):
        engine.predict_series_many(items)


@pytest.mark.parametrize("channel", ["P-1", "T-10"])  # hard sigmoid; SMAP 25 and MSL 55 features
def test_narrow_segments_equal_the_wide_step_loop_and_the_reference(
    engine: InferenceEngine, nasa: TelemanomDataset, reference_dir: Path, channel: str
) -> None:
    """A few windows take the windows-first loop (``NARROW_WINDOWS``): same numbers as BLAS's."""
    weights = _weights(reference_dir, channel)
    rows = nasa.load(channel, "test")[100:]
    reference = np.load(reference_dir / "y_hat" / f"{channel}.npy")[100:]
    wide = engine.predict_series(weights, rows[: 250 + 64])
    for count in (1, 2, 5, NARROW_WINDOWS):
        narrow = engine.predict_series(weights, rows[: 250 + count])
        assert np.abs(narrow - wide[:count]).max() <= 1e-6, count
        assert np.abs(narrow - reference[:count]).max() <= TOLERANCE, count


@pytest.mark.parametrize("channel", ["P-1", "T-10"])
def test_narrow_segments_equal_the_wide_step_loop_on_synthetic_channels(
    engine: InferenceEngine, synth: TelemanomDataset, small_model: Callable[[str], LstmWeights], channel: str
) -> None:
    weights = small_model(channel)
    rows = synth.load(channel, "test")[100:]
    wide = engine.predict_series(weights, rows[: 250 + 64])
    for count in (1, 2, 5, NARROW_WINDOWS):
        assert np.abs(engine.predict_series(weights, rows[: 250 + count]) - wide[:count]).max() <= 1e-6, count
