"""`tmstream evaluate` end to end on a few real channels, and on the synthetic set's predictions."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from tmstream.cli import app
from tmstream.ground.exceptions import DataError, TmstreamError

runner = CliRunner()


def run(nasa_dir, *args: str):
    return runner.invoke(app, ["--data-dir", str(nasa_dir), "evaluate", "--no-mlflow", *args])


def test_json_report_matches_the_2018_log_for_chosen_channels(nasa_dir, logged_streams):
    result = run(nasa_dir, "--channels", "P-1,E-1,P-2", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    rows = [(c["channel"], c["row"], c["tp"], c["fp"], c["fn"]) for c in report["channels"]]
    logged = [
        (s.channel, s.row, s.tp, s.fp, s.fn) for s in logged_streams if s.channel in {"P-1", "E-1", "P-2"}
    ]
    assert rows == logged
    assert report["total"]["tp"] == sum(s.tp for s in logged_streams if s.channel in {"P-1", "E-1", "P-2"})
    assert report["channels"][0]["detections"][0][:2] == [2131, 2350]


def test_table_and_csv(nasa_dir, reference_dir, tmp_path):
    out = tmp_path / "results.csv"
    result = run(
        nasa_dir, "--source", "stream", "--spacecraft", "MSL", "--channels", "M-6,S-1", "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    assert "total" in result.stdout and "F0.5" in result.stdout
    rows = list(csv.DictReader(out.open()))
    assert [(r["scope"], r["name"]) for r in rows] == [
        ("channel", "M-6"),
        ("spacecraft", "MSL"),
        ("total", "total"),
    ]
    assert (rows[-1]["tp"], rows[-1]["fp"], rows[-1]["fn"]) == ("1", "0", "0")


def test_table_and_csv_of_synthetic_predictions(synth_dir, synth, synth_predictions, tmp_path):
    out = tmp_path / "results.csv"
    result = run(
        synth_dir, "--source", "stream", "--predictions", str(synth_predictions), "--spacecraft", "MSL",
        "--channels", "M-6,S-1", "--out", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "total" in result.stdout and "F0.5" in result.stdout
    rows = list(csv.DictReader(out.open()))
    assert [(r["scope"], r["name"]) for r in rows] == [
        ("channel", "M-6"),
        ("spacecraft", "MSL"),
        ("total", "total"),
    ]
    assert int(rows[-1]["tp"]) + int(rows[-1]["fn"]) == len(synth.channels["M-6"].sequences)
    assert int(rows[-1]["tp"]) + int(rows[-1]["fp"]) >= 1


def test_a_folder_of_predictions_is_read_like_the_reference(nasa_dir, reference_dir, tmp_path):
    shutil.copy(reference_dir / "y_hat" / "A-1.npy", tmp_path / "A-1.npy")
    ours = json.loads(run(nasa_dir, "--channels", "A-1", "--predictions", str(tmp_path), "--json").stdout)
    reference = json.loads(run(nasa_dir, "--channels", "A-1", "--json").stdout)
    assert ours["channels"] == reference["channels"]
    assert ours["predictions"] == str(tmp_path.resolve())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--predictions", "/no/such/folder"], "neither a known source"),
        (["--channels", "NOPE-1"], "unknown channel"),
        (["--spacecraft", "VOYAGER"], "unknown spacecraft"),
    ],
)
def test_user_errors_are_tmstream_errors(synth_dir, args, message):
    result = run(synth_dir, *args)
    assert isinstance(result.exception, TmstreamError)
    assert message in str(result.exception)


def test_predictions_of_the_wrong_length_are_refused(synth_dir, tmp_path):
    np.save(tmp_path / "A-1.npy", np.zeros(10))
    result = run(synth_dir, "--channels", "A-1", "--predictions", str(tmp_path))
    assert isinstance(result.exception, DataError)
    assert "10 predictions for channel A-1" in str(result.exception)
