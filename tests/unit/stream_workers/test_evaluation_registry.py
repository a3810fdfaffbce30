"""`evaluate --alias`: the registered 2018 model through the inference engine scores like the 2018
y_hat, and the run lands in MLflow with what produced it; a registered small model of the synthetic
set scores like its saved predictions."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evaluation.tracking import EXPERIMENT
from model_store.registry import ModelRegistry
from model_store.weights import LstmWeights
from tmstream.cli import app
from tmstream.cli.evaluate import EvaluationError
from tmstream.ground.settings import load_settings

runner = CliRunner()
CHANNEL = "D-14"


@pytest.fixture(scope="module")
def state_dir(nasa_dir: Path, reference_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private registry holding the 2018 model of one short channel."""
    folder = tmp_path_factory.mktemp("state")
    imported = cli(nasa_dir, folder, "models", "import-reference", "-c", CHANNEL)
    assert imported.exit_code == 0, imported.output
    return folder


def cli(nasa_dir: Path, state_dir: Path, *args: str):
    return runner.invoke(app, ["--data-dir", str(nasa_dir), "--state-dir", str(state_dir), *args])


def test_alias_reference_scores_like_the_2018_predictions_and_is_logged(nasa_dir, state_dir):
    engine = cli(nasa_dir, state_dir, "evaluate", "--channels", CHANNEL, "--alias", "reference", "--json")
    assert engine.exit_code == 0, engine.output
    saved = cli(nasa_dir, state_dir, "evaluate", "--channels", CHANNEL, "--json", "--no-mlflow")
    ours, reference = json.loads(engine.stdout), json.loads(saved.stdout)
    assert ours["predictions"] == "alias:reference"
    assert [d[:2] for d in ours["channels"][0]["detections"]] == [[1892, 2118]]
    assert [d[:2] for d in ours["channels"][0]["detections"]] == [
        d[:2] for d in reference["channels"][0]["detections"]
    ]
    assert ours["total"] == reference["total"]
    assert len(list((state_dir / "predictions" / CHANNEL).glob("*.npy"))) == 1
    again = cli(nasa_dir, state_dir, "evaluate", "--channels", CHANNEL, "--alias", "reference", "--json")
    assert json.loads(again.stdout)["channels"] == ours["channels"]

    settings = load_settings({"data_dir": str(nasa_dir), "state_dir": str(state_dir)})
    client = ModelRegistry(settings).client
    run = client.get_run(ours["mlflow_run_id"])
    assert client.get_experiment(run.info.experiment_id).name == EXPERIMENT
    assert run.data.params["source"] == "batch"
    assert run.data.params["alias"] == "reference"
    assert run.data.params["threshold.p"] == "0.13"
    assert run.data.tags[f"model_version.{CHANNEL}"] == "1"
    assert run.data.metrics["total.tp"] == ours["total"]["tp"]
    assert run.data.metrics["MSL.f0_5"] == pytest.approx(ours["spacecraft"]["MSL"]["f0_5"])
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["evaluation.csv"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--alias", "best"], "unknown alias"),
        (["--alias", "reference", "--predictions", "reference"], "not both"),
        (["--events", "kafka"], "--source stream only"),
    ],
)
def test_contradictory_sources_are_refused(synth_dir, tmp_path, args, message):
    result = cli(synth_dir, tmp_path, "evaluate", "--channels", CHANNEL, "--no-mlflow", *args)
    assert isinstance(result.exception, EvaluationError)
    assert message in str(result.exception)


def test_alias_champion_of_a_small_model_scores_like_its_saved_predictions(
    synth_dir: Path, synth_predictions: Path, small_model: Callable[[str], LstmWeights], tmp_path: Path
) -> None:
    settings = load_settings({"data_dir": str(synth_dir), "state_dir": str(tmp_path)})
    ModelRegistry(settings).register_weights(small_model(CHANNEL), aliases=["champion"])
    engine = cli(synth_dir, tmp_path, "evaluate", "--channels", CHANNEL, "--alias", "champion", "--json")
    assert engine.exit_code == 0, engine.output
    saved = cli(
        synth_dir, tmp_path, "evaluate", "--channels", CHANNEL, "--predictions", str(synth_predictions),
        "--json", "--no-mlflow",
    )  # fmt: skip
    ours, expected = json.loads(engine.stdout), json.loads(saved.stdout)
    assert ours["predictions"] == "alias:champion"
    assert ours["channels"][0]["detections"]
    assert [d[:2] for d in ours["channels"][0]["detections"]] == [
        d[:2] for d in expected["channels"][0]["detections"]
    ]
    assert ours["total"] == expected["total"]
    run = ModelRegistry(settings).client.get_run(ours["mlflow_run_id"])
    assert run.data.params["alias"] == "champion"
    assert run.data.tags[f"model_version.{CHANNEL}"] == "1"
