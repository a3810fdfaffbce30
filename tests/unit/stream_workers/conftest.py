"""Reference data of the 2018 run: predictions, smoothed errors and the per-stream log."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from evaluation.detections import REFERENCE_RUN_NO_BACKFILL
from producers.dataset import TelemanomDataset
from stream_workers.thresholding.parameters import ThresholdParameters

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
def reference_channel(nasa: TelemanomDataset):
    """Loader of a channel's reference predictions, telemetry and smoothed errors (cached)."""
    cache: dict[str, ReferenceChannel] = {}

    def load(name: str) -> ReferenceChannel:
        if name not in cache:
            reference = Path(nasa.root) / "reference-2018"
            cache[name] = ReferenceChannel(
                name=name,
                predictions=np.load(reference / "y_hat" / f"{name}.npy"),
                telemetry=nasa.load(name)[:, 0],
                smoothed_errors=np.load(reference / "smoothed_errors" / f"{name}.npy"),
            )
        return cache[name]

    return load


@pytest.fixture(scope="session")
def logged_streams(nasa_dir: Path) -> list[LoggedStream]:
    """Per-stream TP/FP/FN from the 2018 run's params.log, in label-file order."""
    text = (nasa_dir / "reference-2018" / "params.log").read_text()
    streams = [
        LoggedStream(int(r), c, int(tp), int(fp), int(fn)) for r, c, tp, fp, fn in LOG_STREAM.findall(text)
    ]
    assert len(streams) == 82
    return streams


@pytest.fixture(scope="session")
def labelled_channels(nasa: TelemanomDataset) -> list[str]:
    """Distinct channels with labels, in label-file order."""
    return list(dict.fromkeys(info.channel for info in nasa.label_rows))
