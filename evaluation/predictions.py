"""Where predictions (y_hat) come from: a folder of ``<channel>.npy`` files, or a named source.

``NAMED_SOURCES`` is the extension point: a name given to ``tmstream evaluate --predictions`` maps to
a factory building a ``PredictionSource`` from the settings. ``reference`` is the 2018 run's y_hat;
``alias:<alias>`` (``tmstream evaluate --alias``) runs the registered model an MLflow alias points
to through the inference engine, so a model is judged on exactly what the worker would predict;
``alias:<alias>@hybrid`` and ``@approximate`` predict as the worker's inference policies do.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from model_store.registry import ALIASES
from producers.dataset import TelemanomDataset
from tmstream.ground.exceptions import DataError
from tmstream.ground.settings import Settings

# the worker's ``worker.inference_policy`` values
INFERENCE_POLICIES = ("windowed", "hybrid", "approximate")


class PredictionSource(Protocol):
    """Gives the one-step-ahead predictions of a channel's test split (prediction i: row l_s + i)."""

    @property
    def name(self) -> str: ...

    def predictions(self, channel: str) -> np.ndarray: ...

    def close(self) -> None:
        """Release what the source holds (the engine's threads); the source is not used after."""


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

    def close(self) -> None:
        """Nothing is held between calls."""


class RegistryPredictions:
    """Predictions of the model an MLflow alias points to, per channel, by the inference engine.

    Aligned like the 2018 y_hat (element i from test rows i..i+l_s-1, rows - l_s - n_predictions
    of them); the engine tracks Keras to ~1e-6, so ``alias:reference`` scores like ``reference``.
    ``versions`` records the model version used per channel (the evaluation run logs it).

    ``inference`` is the worker's policy (``worker.inference_policy``): ``windowed`` predicts every
    window from a zero state (Telemanom); ``hybrid`` carries the state from row 0 for versions
    measured stateful, with the online guard (``guarded_series``), as the worker does;
    ``approximate`` carries it for every channel, unchecked.

    Predicting all 82 test splits takes minutes, so each result is kept under
    ``<state_dir>/predictions/<channel>/<weights sha256>-<rows>[-<inference>].npy``: a model's
    weights and the test split decide the predictions, so a promotion or a new version is never
    served stale ones.
    """

    def __init__(self, settings: Settings, alias: str, inference: str = "windowed") -> None:
        from model_store.engine import InferenceEngine
        from model_store.registry import ModelRegistry

        if inference not in INFERENCE_POLICIES:
            known = ", ".join(INFERENCE_POLICIES)
            raise DataError(f"unknown inference {inference!r}; expected one of {known}")
        self.alias = alias
        self.inference = inference
        self.verify_every = settings.worker.verify_every
        self.tolerance = settings.worker.stateful_tolerance
        self.registry = ModelRegistry(settings)
        self.engine = InferenceEngine()
        self.dataset = TelemanomDataset(settings.data_dir)
        self.cache_dir = settings.state_dir / "predictions"
        self.versions: dict[str, str] = {}

    @property
    def name(self) -> str:
        suffix = "" if self.inference == "windowed" else f"@{self.inference}"
        return f"alias:{self.alias}{suffix}"

    def predictions(self, channel: str) -> np.ndarray:
        from model_store.mode_measurement import guarded_series

        weights = self.registry.load_alias(channel, self.alias)
        rows = self.dataset.load(channel)
        self.versions[channel] = weights.version
        mode = self.inference
        if mode == "hybrid" and weights.inference_mode == "windowed":
            mode = "windowed"  # the same predictions as a windowed run: share its cache entry
        suffix = "" if mode == "windowed" else f"-{mode}"
        cached = self.cache_dir / channel / f"{weights.content_hash()}-{len(rows)}{suffix}.npy"
        if cached.is_file():
            return np.asarray(np.load(cached), dtype=np.float64)
        aligned = len(rows) - weights.l_s - weights.n_predictions
        if mode == "windowed":
            predicted = self.engine.predict_series(weights, rows)
        elif mode == "hybrid":
            predicted, _ = guarded_series(self.engine, weights, rows, self.verify_every, self.tolerance)
        else:
            predicted = self.engine.predict_series_carried(weights, rows)
        predicted = predicted[:aligned]
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(".partial.npy")
        np.save(partial, predicted)
        partial.replace(cached)  # an interrupted run leaves no truncated cache entry
        return predicted

    def close(self) -> None:
        self.engine.close()


def reference_predictions(settings: Settings) -> PredictionSource:
    """The KDD 2018 run's predictions shipped with the data set."""
    return PredictionFolder(settings.data_dir / "reference-2018" / "y_hat", name="reference")


def alias_predictions(alias: str, inference: str = "windowed") -> Callable[[Settings], PredictionSource]:
    """Factory of a registry alias's predictions (``alias:<alias>``, ``alias:<alias>@<inference>``)."""

    def build(settings: Settings) -> PredictionSource:
        return RegistryPredictions(settings, alias, inference)

    return build


NAMED_SOURCES: dict[str, Callable[[Settings], PredictionSource]] = {
    "reference": reference_predictions,
    **{f"alias:{alias}": alias_predictions(alias) for alias in ALIASES},
    **{
        f"alias:{alias}@{inference}": alias_predictions(alias, inference)
        for alias in ALIASES
        for inference in INFERENCE_POLICIES
        if inference != "windowed"
    },
}


def resolve_predictions(spec: str, settings: Settings) -> PredictionSource:
    """A registered name (``reference``) or a folder of ``<channel>.npy`` predictions."""
    if spec in NAMED_SOURCES:
        return NAMED_SOURCES[spec](settings)
    folder = Path(spec).expanduser()
    if not folder.is_dir():
        names = ", ".join(sorted(NAMED_SOURCES))
        raise DataError(f"--predictions {spec!r} is neither a known source ({names}) nor a folder")
    return PredictionFolder(folder.resolve())
