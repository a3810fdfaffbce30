"""Where predictions (y_hat) come from: a folder of ``<channel>.npy`` files, or a named source.

``NAMED_SOURCES`` is the extension point: a name given to ``tmstream evaluate --predictions`` maps to
a factory building a ``PredictionSource`` from the settings. ``reference`` is the 2018 run's y_hat;
a model-store source (e.g. a registered model alias run through the inference engine) is added by
registering another factory here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from tmstream.exceptions import DataError
from tmstream.settings import Settings


class PredictionSource(Protocol):
    """Gives the one-step-ahead predictions of a channel's test split (prediction i: row l_s + i)."""

    @property
    def name(self) -> str: ...

    def predictions(self, channel: str) -> np.ndarray: ...


class PredictionFolder:
    """Predictions saved as ``<folder>/<channel>.npy`` (Telemanom's y_hat layout)."""

    def __init__(self, folder: Path, name: str | None = None) -> None:
        self.folder = Path(folder)
        self._name = name or str(self.folder)
        if not self.folder.is_dir():
            raise DataError(f"prediction folder {self.folder} does not exist")

    @property
    def name(self) -> str:
        return self._name

    def predictions(self, channel: str) -> np.ndarray:
        path = self.folder / f"{channel}.npy"
        if not path.is_file():
            raise DataError(f"no predictions for channel {channel} in {self.folder}")
        values = np.load(path)
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        if values.ndim != 1:
            raise DataError(f"{path}: expected a 1-D prediction array, found shape {values.shape}")
        return values.astype(np.float64)


def reference_predictions(settings: Settings) -> PredictionSource:
    """The KDD 2018 run's predictions shipped with the data set."""
    return PredictionFolder(settings.data_dir / "reference-2018" / "y_hat", name="reference")


NAMED_SOURCES: dict[str, Callable[[Settings], PredictionSource]] = {"reference": reference_predictions}


def resolve_predictions(spec: str, settings: Settings) -> PredictionSource:
    """A registered name (``reference``) or a folder of ``<channel>.npy`` predictions."""
    if spec in NAMED_SOURCES:
        return NAMED_SOURCES[spec](settings)
    folder = Path(spec).expanduser()
    if not folder.is_dir():
        names = ", ".join(sorted(NAMED_SOURCES))
        raise DataError(f"--predictions {spec!r} is neither a known source ({names}) nor a folder")
    return PredictionFolder(folder.resolve())
