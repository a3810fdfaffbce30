"""Train Telemanom models on a channel's train split, tracked and registered in MLflow."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from model_store.engine import InferenceEngine
from model_store.exceptions import TrainingError
from model_store.mode_measurement import measure_mode
from model_store.registry import ModelRegistry, fluent_tracking, model_name
from producers.dataset import TelemanomDataset
from tmstream.ground.settings import ModelSettings, Settings

EpochCallback = Callable[[str, int, int, dict[str, float]], None]
SHUFFLE_SEED = 0
_CACHE_SETTINGS = {"cache_max_models", "cache_max_bytes", "refresh_seconds"}


@dataclass(frozen=True)
class TrainingWindows:
    inputs: np.ndarray  # (N, l_s, features) float32
    targets: np.ndarray  # (N, n_predictions) float32: telemetry (column 0) after each window
    sha256: str  # of the train split the windows came from


@dataclass(frozen=True)
class TrainingResult:
    channel: str
    version: str
    run_id: str
    epochs: int
    loss: float
    val_loss: float | None
    duration_s: float
    promoted: bool


def training_windows(train: np.ndarray, settings: ModelSettings, channel: str) -> TrainingWindows:
    """Telemanom's ``shape_data``: every l_s + n_predictions slice, shuffled (fixed seed)."""
    span = settings.l_s + settings.n_predictions
    count = len(train) - span
    if count < 2:
        raise TrainingError(
            f"channel {channel}: {len(train)} train rows are too few for l_s {settings.l_s} "
            f"+ n_predictions {settings.n_predictions}"
        )
    slices = np.lib.stride_tricks.sliding_window_view(train, span, axis=0)[:count]
    slices = np.moveaxis(slices, -1, 1)  # (count, span, features)
    order = np.random.default_rng(SHUFFLE_SEED).permutation(count)
    data = np.ascontiguousarray(slices[order], dtype=np.float32)
    digest = hashlib.sha256(np.ascontiguousarray(train).tobytes()).hexdigest()
    return TrainingWindows(data[:, : settings.l_s, :], data[:, settings.l_s :, 0], digest)


def train_channel(
    settings: Settings,
    registry: ModelRegistry,
    channel: str,
    *,
    promote: bool = True,
    on_epoch: EpochCallback | None = None,
) -> TrainingResult:
    """Fit one channel's model, log it to MLflow and register it (``champion`` if promote)."""
    import keras
    import mlflow
    import mlflow.keras
    from mlflow.models import infer_signature

    from model_store.keras_model import build_model, to_lstm_weights

    model_settings = settings.model
    train = TelemanomDataset(settings.data_dir).load(channel, "train")
    windows = training_windows(train, model_settings, channel)
    model = build_model(model_settings, train.shape[1])
    registry.ensure_registered_model(channel)
    epochs = model_settings.epochs

    class _Track(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            values = {k: float(v) for k, v in (logs or {}).items()}
            mlflow.log_metrics(values, step=epoch)
            if on_epoch is not None:
                on_epoch(channel, epoch + 1, epochs, values)

    started = time.perf_counter()
    with (
        fluent_tracking(registry.uri),
        mlflow.start_run(
            experiment_id=registry.experiment_id(),
            run_name=f"train-{channel}",
            tags={"channel": channel, "source": "trained"},
        ) as run,
    ):
        mlflow.log_params(
            {
                "channel": channel,
                "features": train.shape[1],
                "train_rows": len(train),
                "windows": len(windows.inputs),
                "data_sha256": windows.sha256,
                **model_settings.model_dump(
                    exclude={"cache_max_models", "cache_max_bytes", "refresh_seconds"}
                ),
            }
        )
        mlflow.set_tag("data_sha256", windows.sha256)
        history = model.fit(
            windows.inputs,
            windows.targets,
            batch_size=model_settings.batch_size,
            epochs=epochs,
            validation_split=model_settings.validation_split,
            callbacks=[
                keras.callbacks.EarlyStopping(
                    monitor="val_loss" if model_settings.validation_split > 0 else "loss",
                    patience=model_settings.patience,
                    min_delta=model_settings.min_delta,
                ),
                _Track(),
            ],
            verbose=0,
        )
        duration = time.perf_counter() - started
        losses = history.history
        loss = float(losses["loss"][-1])
        val_loss = float(losses["val_loss"][-1]) if "val_loss" in losses else None
        mlflow.log_metric("duration_s", duration)
        sample = windows.inputs[:2]
        logged = mlflow.keras.log_model(
            model,
            name="model",
            signature=infer_signature(sample, model.predict(sample, verbose=0)),
            registered_model_name=model_name(channel),
        )
        weights = to_lstm_weights(model, channel, model_settings.l_s)
        weights_uri = registry.log_weights(run.info.run_id, weights)
    version = str(logged.registered_model_version)
    metrics = {"metric.loss": f"{loss:.6g}", "metric.epochs": str(len(losses["loss"]))}
    if val_loss is not None:
        metrics["metric.val_loss"] = f"{val_loss:.6g}"
    engine = InferenceEngine()
    try:
        verdict = measure_mode(engine, weights, train)
    finally:
        engine.close()
    registry.describe_version(
        weights.with_version(version),
        version,
        weights_uri,
        aliases=["champion"] if promote else [],
        tags={**metrics, "data_sha256": windows.sha256, **verdict.tags()},
    )
    return TrainingResult(
        channel, version, run.info.run_id, len(losses["loss"]), loss, val_loss, duration, promote
    )
