"""The Keras 2 HDF5 reader against the raw datasets of the 2018 files, and against a file of the
same layout written here from a small model (so the reader is tested without the NASA folder)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from model_store.exceptions import WeightsError
from model_store.keras2_h5 import read_keras2_h5
from model_store.weights import LstmWeights, load_npz, save_npz


def _layer_names(path: Path) -> list[str]:
    with h5py.File(path, "r") as handle:
        config = json.loads(handle.attrs["model_config"])
    return [layer["config"]["name"] for layer in config["config"]]


def write_keras2_h5(weights: LstmWeights, path: Path, first: int = 7) -> Path:
    """``weights`` in the layout Keras 2.1.5 saved the 2018 models in (Sequential: LSTM, Dropout,
    LSTM, Dropout, Dense, Activation; arrays under model_weights/<layer>/<layer>/<name>:0)."""
    names = [f"lstm_{first}", f"dropout_{first}", f"lstm_{first + 1}", f"dropout_{first + 1}"]
    names += [f"dense_{first}", f"activation_{first}"]
    kinds = ["LSTM", "Dropout", "LSTM", "Dropout", "Dense", "Activation"]
    activation = {"hard_sigmoid_keras2": "hard_sigmoid", "sigmoid": "sigmoid"}[weights.recurrent_activation]
    configs: dict[str, dict[str, object]] = {
        "LSTM": {"activation": "tanh", "recurrent_activation": activation},
        "Dense": {"activation": "linear"},
        "Activation": {"activation": "linear"},
        "Dropout": {"rate": 0.3},
    }
    layers = [
        {"class_name": k, "config": {"name": n, **configs[k]}} for k, n in zip(kinds, names, strict=True)
    ]
    arrays = {
        name: {"kernel": layer.kernel, "recurrent_kernel": layer.recurrent_kernel, "bias": layer.bias}
        for name, layer in zip((names[0], names[2]), weights.layers, strict=True)
    }
    arrays[names[4]] = {"kernel": weights.dense_kernel, "bias": weights.dense_bias}
    with h5py.File(path, "w") as handle:
        handle.attrs["keras_version"] = "2.1.5"
        handle.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": layers})
        group = handle.create_group("model_weights")
        group.attrs["layer_names"] = [n.encode() for n in names]
        for name in names:
            layer = group.create_group(name)
            layer.attrs["weight_names"] = [f"{name}/{role}:0".encode() for role in arrays.get(name, {})]
            for role, array in arrays.get(name, {}).items():
                layer.create_dataset(f"{name}/{role}:0", data=array)
    return path


@pytest.fixture
def small_h5(small_model: Callable[[str], LstmWeights], tmp_path: Path) -> Path:
    return write_keras2_h5(small_model("T-9"), tmp_path / "T-9.h5")


def test_reads_a_file_of_the_2018_layout_written_from_a_small_model(
    small_model: Callable[[str], LstmWeights], small_h5: Path
) -> None:
    weights = read_keras2_h5(small_h5, "T-9")
    assert weights.content_hash() == small_model("T-9").content_hash()
    assert weights.recurrent_activation == "hard_sigmoid_keras2" and weights.n_features == 55
    renamed = write_keras2_h5(small_model("T-9"), small_h5.with_name("other.h5"), first=43)
    assert _layer_names(renamed)[0] != _layer_names(small_h5)[0]
    assert read_keras2_h5(renamed, "T-9").content_hash() == weights.content_hash()


def test_a_damaged_small_file_is_a_weights_error(small_h5: Path, tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=r"channel T-9: model file .*T-9\.h5 expects 55"):
        read_keras2_h5(small_h5, "T-9", expected_features=25)
    source = small_h5.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(source[: len(source) // 2])
    with pytest.raises(WeightsError, match="channel T-9"):
        read_keras2_h5(cut, "T-9")
    second = _layer_names(small_h5)[2]
    with h5py.File(small_h5, "r+") as handle:
        del handle[f"model_weights/{second}"]
    with pytest.raises(WeightsError, match=rf"channel T-9: .*{second}"):
        read_keras2_h5(small_h5, "T-9")


@pytest.mark.parametrize("channel", ["P-1", "A-1", "T-10"])
def test_reads_files_whatever_their_layer_names(reference_dir: Path, channel: str) -> None:
    path = reference_dir / "models" / f"{channel}.h5"
    names = _layer_names(path)
    lstm_first, lstm_second, dense = names[0], names[2], names[4]
    weights = read_keras2_h5(path, channel)
    with h5py.File(path, "r") as handle:
        group = handle["model_weights"]
        np.testing.assert_array_equal(
            weights.layers[0].recurrent_kernel, group[f"{lstm_first}/{lstm_first}/recurrent_kernel:0"]
        )
        np.testing.assert_array_equal(
            weights.layers[1].kernel, group[f"{lstm_second}/{lstm_second}/kernel:0"]
        )
        np.testing.assert_array_equal(weights.dense_bias, group[f"{dense}/{dense}/bias:0"])
    assert weights.units == [80, 80]
    assert weights.recurrent_activation == "hard_sigmoid_keras2"
    assert weights.n_features == (25 if channel[0] in "PA" else 55)


def test_layer_names_really_differ_between_files(reference_dir: Path) -> None:
    models = reference_dir / "models"
    assert _layer_names(models / "P-1.h5")[0] != _layer_names(models / "A-1.h5")[0]


def test_npz_round_trip_keeps_arrays_and_hash(reference_dir: Path, tmp_path: Path) -> None:
    weights = read_keras2_h5(reference_dir / "models" / "T-9.h5", "T-9")
    save_npz(weights, tmp_path / "w.npz")
    again = load_npz(tmp_path / "w.npz")
    assert again.content_hash() == weights.content_hash()
    assert again.channel == "T-9" and again.recurrent_activation == weights.recurrent_activation
    np.testing.assert_array_equal(again.layers[1].recurrent_kernel, weights.layers[1].recurrent_kernel)


def test_corrupt_file_names_channel_and_file(tmp_path: Path) -> None:
    bad = tmp_path / "X-1.h5"
    bad.write_bytes(b"not an hdf5 file" * 10)
    with pytest.raises(WeightsError, match=r"channel X-1: .*X-1\.h5"):
        read_keras2_h5(bad, "X-1")


def test_truncated_file_is_a_weights_error(reference_dir: Path, tmp_path: Path) -> None:
    source = (reference_dir / "models" / "T-8.h5").read_bytes()
    cut = tmp_path / "T-8.h5"
    cut.write_bytes(source[: len(source) // 2])
    with pytest.raises(WeightsError, match="channel T-8"):
        read_keras2_h5(cut, "T-8")


def test_missing_dataset_is_a_weights_error(reference_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "T-9.h5"
    shutil.copy(reference_dir / "models" / "T-9.h5", copy)
    copy.chmod(0o644)
    second = _layer_names(copy)[2]
    with h5py.File(copy, "r+") as handle:
        del handle[f"model_weights/{second}"]
    with pytest.raises(WeightsError, match=rf"channel T-9: .*{second}"):
        read_keras2_h5(copy, "T-9")


def test_wrong_input_width_names_channel_and_file(reference_dir: Path) -> None:
    path = reference_dir / "models" / "T-10.h5"
    with pytest.raises(WeightsError, match=r"channel T-10: model file .*T-10\.h5 expects 55"):
        read_keras2_h5(path, "T-10", expected_features=25)


def test_npz_round_trip_of_a_small_model(small_model: Callable[[str], LstmWeights], tmp_path: Path) -> None:
    weights = small_model("P-1")
    save_npz(weights, tmp_path / "w.npz")
    again = load_npz(tmp_path / "w.npz")
    assert again.content_hash() == weights.content_hash()
    assert (again.channel, again.l_s, again.source) == ("P-1", 250, "synthetic")


def test_damaged_npz_is_a_weights_error(tmp_path: Path) -> None:
    bad = tmp_path / "weights.npz"
    bad.write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(WeightsError, match="channel P-1"):
        load_npz(bad, channel="P-1")
