"""`tmstream models …`, `tmstream train` and `tmstream predict`: the model registry from the shell."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from model_store.exceptions import ModelStoreError
from model_store.inference_mode import ModeVerdict
from model_store.registry import ALIASES, ModelRegistry, ModelVersionInfo
from producers.dataset import TelemanomDataset
from tmstream.cli.context import console, emit_json, err_console, settings_from
from tmstream.ground.settings import Settings

app = typer.Typer(no_args_is_help=True, help="Registered Telemanom models (MLflow).")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )


def _row(info: ModelVersionInfo) -> dict[str, object]:
    verdict = ModeVerdict.from_tags(info.tags)
    return {
        "channel": info.channel,
        "version": info.version,
        "aliases": list(info.aliases),
        "source": info.source,
        "metrics": info.metrics,
        "recurrent_activation": info.tags.get("recurrent_activation"),
        "inference_mode": _mode(verdict),
        "stateful_max_error": verdict.max_error if verdict is not None else None,
        "run_id": info.run_id,
    }


def _mode(verdict: ModeVerdict | None) -> str:
    """The version's inference mode; a version never measured is scored with windows."""
    return verdict.mode if verdict is not None else "windowed (not measured)"


@app.command("list")
def list_models(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
) -> None:
    """Every registered version: channel, version, aliases, source and key metrics."""
    infos = ModelRegistry(settings_from(ctx)).list_models()
    if as_json:
        emit_json([_row(info) for info in infos])
        return
    table = Table("channel", "version", "aliases", "source", "inference", "max |Δ|", "metrics")
    for info in infos:
        metrics = " ".join(f"{k}={v:.4g}" for k, v in sorted(info.metrics.items()))
        verdict = ModeVerdict.from_tags(info.tags)
        error = f"{verdict.max_error:.3g}" if verdict is not None else ""
        aliases = ",".join(info.aliases)
        table.add_row(info.channel, info.version, aliases, info.source, _mode(verdict), error, metrics)
    console.print(table)


@app.command("verify-mode")
def verify_mode(
    ctx: typer.Context,
    channel: str = typer.Option(..., "--channel", "-c", help="Channel, e.g. P-1."),
    version: str | None = typer.Option(None, help="Registered version (default: the champion)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
) -> None:
    """Measure stateful against windowed inference on the channel's train split and record the mode.

    Every window of the split is predicted both ways with the engine (float32); `stateful` when the
    largest difference is within the tolerance (1e-5), else `windowed`. Exits 1 when the recorded
    mode changes (the new one is recorded).
    """
    settings = settings_from(ctx)
    registry = ModelRegistry(settings)
    info = registry.version_info(channel, version) if version else registry.resolve(channel)
    before = ModeVerdict.from_tags(info.tags)
    verdict = registry.verify_mode(info, TelemanomDataset(settings.data_dir).load(channel, split="train"))
    agrees = before is not None and before.mode == verdict.mode
    if as_json:
        emit_json({"channel": channel, "version": info.version, "mode": verdict.mode,
                   "max_error": verdict.max_error, "rows": verdict.rows,
                   "recorded_before": before.mode if before else None, "agrees": agrees})  # fmt: skip
    else:
        was = before.mode if before else "not measured"
        console.print(f"{channel} version {info.version}: {verdict.describe()} (recorded before: {was})")
    if before is not None and not agrees:
        raise typer.Exit(1)


@app.command("promote")
def promote(
    ctx: typer.Context,
    channel: str = typer.Argument(..., help="Channel, e.g. P-1."),
    version: str = typer.Argument(..., help="Registered version number."),
    alias: str = typer.Option("champion", help=f"One of {', '.join(ALIASES)}."),
) -> None:
    """Point an alias at a version; running workers swap to it on their next refresh."""
    info = ModelRegistry(settings_from(ctx)).promote(channel, version, alias)
    console.print(f"{channel}: alias {alias} → version {info.version}")


@app.command("import-reference")
def import_reference(
    ctx: typer.Context,
    folder: Path | None = typer.Argument(
        None, help="Folder of <channel>.h5 files (default <data_dir>/reference-2018/models)."
    ),
    channel: list[str] | None = typer.Option(None, "--channel", "-c", help="Only these channels."),
) -> None:
    """Register the 2018 models under `reference` (and `champion` where none is set); idempotent."""
    settings = settings_from(ctx)
    source = folder or settings.data_dir / "reference-2018" / "models"
    registry = ModelRegistry(settings)
    wanted = channel or sorted(p.stem for p in Path(source).glob("*.h5"))
    created = 0
    with _progress() as progress:
        task = progress.add_task("import reference models", total=len(wanted))

        def advance(result: object) -> None:
            progress.advance(task)

        dataset = TelemanomDataset(settings.data_dir)
        results = registry.import_reference(
            Path(source), wanted or None, on_progress=advance,
            train_rows=lambda name: dataset.load(name, split="train"),
        )  # fmt: skip
        created = sum(result.created for result in results)
    console.print(f"{len(results)} reference models, {created} newly registered")


def train(
    ctx: typer.Context,
    channel: list[str] | None = typer.Option(None, "--channel", "-c", help="Channel(s) to train."),
    spacecraft: str | None = typer.Option(None, help="All channels of SMAP or MSL."),
    all_channels: bool = typer.Option(False, "--all", help="All 82 channels."),
    epochs: int | None = typer.Option(None, min=1, help="Epochs (default model.epochs, 35)."),
    no_promote: bool = typer.Option(False, "--no-promote", help="Register without `champion`."),
) -> None:
    """Train Telemanom models, log them to MLflow and register them per channel."""
    from model_store.training import train_channel

    settings = settings_from(ctx, model__epochs=epochs)
    chosen = _channels(settings, channel, spacecraft, all_channels)
    registry = ModelRegistry(settings)
    with _progress() as progress:
        overall = progress.add_task("channels", total=len(chosen))
        for name in chosen:
            task = progress.add_task(f"train {name}", total=settings.model.epochs)

            def on_epoch(
                _c: str, epoch: int, _total: int, logs: dict[str, float], task: TaskID = task
            ) -> None:
                loss = " ".join(f"{k}={v:.4g}" for k, v in logs.items())
                progress.update(task, completed=epoch, description=f"train {_c} {loss}")

            result = train_channel(settings, registry, name, promote=not no_promote, on_epoch=on_epoch)
            progress.update(task, total=result.epochs, completed=result.epochs)
            progress.advance(overall)
            console.print(
                f"{name}: version {result.version}, {result.epochs} epochs, loss {result.loss:.4g}"
                + (f", val_loss {result.val_loss:.4g}" if result.val_loss is not None else "")
                + (", champion" if result.promoted else "")
            )


def predict(
    ctx: typer.Context,
    channel: list[str] | None = typer.Option(None, "--channel", "-c", help="Channel(s)."),
    all_channels: bool = typer.Option(False, "--all", help="Every channel of the data set."),
    alias: str = typer.Option("champion", help=f"Model alias: {', '.join(ALIASES)}."),
    split: str = typer.Option("test", help="train or test."),
    out: Path | None = typer.Option(None, help="Output .npy (one channel)."),
    out_dir: Path | None = typer.Option(None, help="Output folder, <channel>.npy each."),
) -> None:
    """One-step predictions with Telemanom's alignment: element i from rows i..i+l_s-1,
    length rows - l_s - n_predictions (the 2018 y_hat layout)."""
    from model_store.engine import InferenceEngine

    settings = settings_from(ctx)
    if split not in ("train", "test"):
        raise PredictUsageError(f"--split must be train or test, not {split!r}")
    chosen = _channels(settings, channel, None, all_channels)
    if len(chosen) == 1 and out is None and out_dir is None:
        raise PredictUsageError("give --out FILE (one channel) or --out-dir DIR")
    if len(chosen) > 1 and out_dir is None:
        raise PredictUsageError("several channels need --out-dir DIR")
    dataset = TelemanomDataset(settings.data_dir)
    registry = ModelRegistry(settings)
    engine = InferenceEngine()
    with _progress() as progress:
        task = progress.add_task(f"predict ({alias})", total=len(chosen))
        for name in chosen:
            weights = registry.load_alias(name, alias)
            rows = dataset.load(name, split)  # type: ignore[arg-type]
            y_hat = engine.predict_series(weights, rows)[: len(rows) - weights.l_s - weights.n_predictions]
            target = out if out is not None and len(chosen) == 1 else Path(out_dir or ".") / f"{name}.npy"
            target.parent.mkdir(parents=True, exist_ok=True)
            np.save(target, y_hat)
            progress.advance(task)
    engine.close()


class PredictUsageError(ModelStoreError):
    """Contradictory or missing predict/train options."""


def _channels(
    settings: Settings, channels: list[str] | None, spacecraft: str | None, all_channels: bool
) -> list[str]:
    if sum([bool(channels), bool(spacecraft), all_channels]) != 1:
        raise PredictUsageError("choose exactly one of --channel, --spacecraft or --all")
    dataset = TelemanomDataset(settings.data_dir)
    return [info.channel for info in dataset.select(spacecraft=spacecraft, channels=channels)]
