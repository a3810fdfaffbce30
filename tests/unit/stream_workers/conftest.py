"""Reference data of the 2018 run (predictions, smoothed errors, the per-stream log) and the same
shape of channel from the synthetic set, predicted by its small model."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from evaluation.detections import REFERENCE_RUN_NO_BACKFILL
from model_store.engine import InferenceEngine
from model_store.weights import LstmWeights
from producers.dataset import TelemanomDataset
from stream_workers.thresholding.parameters import ThresholdParameters
from stream_workers.thresholding.smoothing import prediction_errors, smooth_errors

LOG_STREAM = re.compile(r"Stream # (\d+): (\S+)\n.*\n.*TP: (\d+)  FP: (\d+)  FN: (\d+)")


@dataclass(frozen=True)
class ReferenceChannel:
    """One channel as the 2018 run saw it."""

    name: str
    predictions: np.ndarray
    telemetry: np.ndarray
    smoothed_errors: np.ndarray

    @property
    def backfill_warmup(self) -> bool:
        return self.name not in REFERENCE_RUN_NO_BACKFILL


@dataclass(frozen=True)
class LoggedStream:
    row: int
    channel: str
    tp: int
    fp: int
    fn: int


@pytest.fixture(scope="session")
def params() -> ThresholdParameters:
    return ThresholdParameters()


@pytest.fixture(scope="session")
def reference_channel(nasa: TelemanomDataset, reference_dir: Path):
    """Loader of a channel's reference predictions, telemetry and smoothed errors (cached)."""
    cache: dict[str, ReferenceChannel] = {}

    def load(name: str) -> ReferenceChannel:
        if name not in cache:
            cache[name] = ReferenceChannel(
                name=name,
                predictions=np.load(reference_dir / "y_hat" / f"{name}.npy"),
                telemetry=nasa.load(name)[:, 0],
                smoothed_errors=np.load(reference_dir / "smoothed_errors" / f"{name}.npy"),
            )
        return cache[name]

    return load


@pytest.fixture(scope="session")
def logged_streams(reference_dir: Path) -> list[LoggedStream]:
    """Per-stream TP/FP/FN from the 2018 run's params.log, in label-file order."""
    text = (reference_dir / "params.log").read_text()
    streams = [
        LoggedStream(int(r), c, int(tp), int(fp), int(fn)) for r, c, tp, fp, fn in LOG_STREAM.findall(text)
    ]
    assert len(streams) == 82
    return streams


@pytest.fixture(scope="session")
def labelled_channels(nasa: TelemanomDataset) -> list[str]:
    """Distinct channels with labels, in label-file order."""
    return list(dict.fromkeys(info.channel for info in nasa.label_rows))


@pytest.fixture(scope="session")
def synth_channel(
    synth: TelemanomDataset, small_model: Callable[[str], LstmWeights], params: ThresholdParameters
) -> Callable[[str], ReferenceChannel]:
    """A synthetic channel as a reference one: its small model's predictions, its smoothed errors."""
    cache: dict[str, ReferenceChannel] = {}
    engine = InferenceEngine(threads=1)

    def load(name: str) -> ReferenceChannel:
        if name not in cache:
            telemetry, model = synth.load(name), small_model(name)
            # as long as a 2018 y_hat: the last n_predictions rows have no full target
            predictions = engine.predict_series(model, telemetry)[: -model.n_predictions]
            errors = prediction_errors(predictions, telemetry[params.l_s : params.l_s + len(predictions), 0])
            smoothed = smooth_errors(errors, params, name not in REFERENCE_RUN_NO_BACKFILL)
            cache[name] = ReferenceChannel(name, predictions, telemetry[:, 0], smoothed)
        return cache[name]

    return load


@pytest.fixture(scope="session")
def synth_predictions(
    synth: TelemanomDataset,
    synth_channel: Callable[[str], ReferenceChannel],
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """A folder of ``<channel>.npy`` predictions (``--predictions``) for the labelled synthetic channels."""
    folder = tmp_path_factory.mktemp("synth-predictions")
    for info in synth.label_rows:
        np.save(folder / f"{info.channel}.npy", synth_channel(info.channel).predictions)
    return folder
