"""The Keras 2 HDF5 reader against the raw datasets of the 2018 files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from model_store.exceptions import WeightsError
from model_store.keras2_h5 import read_keras2_h5
from model_store.weights import load_npz, save_npz


def _layer_names(path: Path) -> list[str]:
    with h5py.File(path, "r") as handle:
        config = json.loads(handle.attrs["model_config"])
    return [layer["config"]["name"] for layer in config["config"]]


@pytest.mark.parametrize("channel", ["P-1", "A-1", "T-10"])
def test_reads_files_whatever_their_layer_names(nasa_dir: Path, channel: str) -> None:
    path = nasa_dir / "reference-2018" / "models" / f"{channel}.h5"
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


def test_layer_names_really_differ_between_files(nasa_dir: Path) -> None:
    models = nasa_dir / "reference-2018" / "models"
    assert _layer_names(models / "P-1.h5")[0] != _layer_names(models / "A-1.h5")[0]


def test_npz_round_trip_keeps_arrays_and_hash(nasa_dir: Path, tmp_path: Path) -> None:
    weights = read_keras2_h5(nasa_dir / "reference-2018" / "models" / "T-9.h5", "T-9")
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


def test_truncated_file_is_a_weights_error(nasa_dir: Path, tmp_path: Path) -> None:
    source = (nasa_dir / "reference-2018" / "models" / "T-8.h5").read_bytes()
    cut = tmp_path / "T-8.h5"
    cut.write_bytes(source[: len(source) // 2])
    with pytest.raises(WeightsError, match="channel T-8"):
        read_keras2_h5(cut, "T-8")


def test_missing_dataset_is_a_weights_error(nasa_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "T-9.h5"
    shutil.copy(nasa_dir / "reference-2018" / "models" / "T-9.h5", copy)
    copy.chmod(0o644)
    second = _layer_names(copy)[2]
    with h5py.File(copy, "r+") as handle:
        del handle[f"model_weights/{second}"]
    with pytest.raises(WeightsError, match=rf"channel T-9: .*{second}"):
        read_keras2_h5(copy, "T-9")


def test_wrong_input_width_names_channel_and_file(nasa_dir: Path) -> None:
    path = nasa_dir / "reference-2018" / "models" / "T-10.h5"
    with pytest.raises(WeightsError, match=r"channel T-10: model file .*T-10\.h5 expects 55"):
        read_keras2_h5(path, "T-10", expected_features=25)


def test_damaged_npz_is_a_weights_error(tmp_path: Path) -> None:
    bad = tmp_path / "weights.npz"
    bad.write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(WeightsError, match="channel P-1"):
        load_npz(bad, channel="P-1")
