"""`tmstream evaluate`: detect anomalies on the test split from saved predictions and score them."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from enum import StrEnum
from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from evaluation.predictions import RegistryPredictions, resolve_predictions
from evaluation.recorded import closed_detections, read_events
from evaluation.report import EvaluationReport, evaluate_streams, score_streams
from evaluation.scoring import Counts
from evaluation.search import search
from evaluation.streams import LabelledStream, labelled_streams
from evaluation.tracking import EXPERIMENT, EvaluationRun, log_evaluation
from model_store.registry import ALIASES
from producers.dataset import TelemanomDataset
from stream_workers.configuration import threshold_parameters
from tmstream.cli.context import console, emit_json, err_console, settings_from
from tmstream.ground.exceptions import TmstreamError


class DetectorSource(StrEnum):
    batch = "batch"
    stream = "stream"


class EventOrigins(StrEnum):
    redis = "redis"
    kafka = "kafka"


class EvaluationError(TmstreamError):
    """The evaluation cannot run with the options given."""


app = typer.Typer(
    invoke_without_command=True,
    help="Detect and score anomalies on the test split; `evaluate search` tries threshold settings.",
)


@app.callback()
def evaluate(
    ctx: typer.Context,
    source: DetectorSource = typer.Option(
        DetectorSource.batch, "--source", help="batch: the 2018 batch run; stream: the causal detector."
    ),
    predictions: str | None = typer.Option(
        None,
        "--predictions",
        help="'reference' (the 2018 run's y_hat, the default), 'alias:<alias>' or a folder of <channel>.npy.",
    ),
    alias: str | None = typer.Option(
        None, "--alias", help=f"Predict with the registered model under this alias ({', '.join(ALIASES)})."
    ),
    events: EventOrigins | None = typer.Option(
        None,
        "--events",
        help="With --source stream: score the closed events a real replay produced (Redis or the topic).",
    ),
    spacecraft: str | None = typer.Option(None, "--spacecraft", help="SMAP or MSL."),
    channels: str | None = typer.Option(None, "--channels", help="Comma-separated channels, e.g. A-1,P-1."),
    out: Path | None = typer.Option(None, "--out", help="Write per-channel and summary rows as CSV."),
    json_output: bool = typer.Option(False, "--json", help="Print the full report as JSON."),
    mlflow: bool = typer.Option(
        True, "--mlflow/--no-mlflow", help="Log the run to MLflow (experiment tmstream-evaluation)."
    ),
) -> None:
    """Detect and score anomalies on the test split (Telemanom's sequence-overlap scoring)."""
    if ctx.invoked_subcommand is not None:
        return
    settings = settings_from(ctx)
    dataset = TelemanomDataset(settings.data_dir)
    wanted = [c.strip() for c in channels.split(",") if c.strip()] if channels else None
    streams = labelled_streams(dataset, spacecraft, wanted)
    if not streams:
        raise EvaluationError("no channel matches the --spacecraft/--channels filter")
    params = threshold_parameters(settings)
    with stream_progress(f"{source.value} thresholding", len(streams)) as advance:
        if events is not None:
            if source is not DetectorSource.stream or predictions or alias:
                raise EvaluationError("--events reads a replay's events: use it with --source stream only")
            recorded = closed_detections(read_events(settings, events.value))
            run = EvaluationRun(f"stream-{events.value}", f"{events.value} events", params)
            report = score_streams(
                streams, lambda channel: recorded.get(channel, []), run.source, run.predictions, advance
            )
        else:
            prediction_source = resolve_predictions(prediction_spec(predictions, alias), settings)
            try:
                report = evaluate_streams(dataset, streams, prediction_source, source.value, params, advance)
            finally:
                prediction_source.close()
            versions: dict[str, str] = {}
            if isinstance(prediction_source, RegistryPredictions):
                versions = prediction_source.versions
            run = EvaluationRun(source.value, prediction_source.name, params, alias, model_versions=versions)
    if out is not None:
        report.write_csv(out)
    run_id = None
    if mlflow:
        run = replace(run, spacecraft=spacecraft, channels=tuple(wanted) if wanted else None)
        run_id = log_evaluation(settings, run, report)
    if json_output:
        emit_json({**report.to_json(), "mlflow_run_id": run_id})
        return
    console.print(summary_table(report))
    if out is not None:
        console.print(f"wrote {out}")
    if run_id is not None:
        console.print(f"MLflow run {run_id} (experiment {EXPERIMENT})")


def _numbers(text: str, kind: type[float] | type[int], option: str) -> list[float]:
    try:
        return [kind(v) for v in text.split(",")]
    except ValueError as exc:
        raise EvaluationError(f"{option} takes comma-separated numbers, got {text!r}") from exc


@app.command("search")
def search_command(
    ctx: typer.Context,
    detector: DetectorSource = typer.Option(DetectorSource.stream, "--detector"),
    predictions: str = typer.Option("reference", "--predictions", help="As for `tmstream evaluate`."),
    select: str = typer.Option("SMAP", "--select", help="Spacecraft the settings are chosen on."),
    folds: int = typer.Option(5, "--folds", min=2, help="Channel cross-validation folds."),
    p: str = typer.Option("0.13", "--p", help="Comma-separated values of p."),
    error_buffer: str = typer.Option("100", "--error-buffer", help="Comma-separated error buffers."),
    smoothing_perc: str = typer.Option("0.05", "--smoothing-perc", help="Comma-separated smoothing shares."),
) -> None:
    """Search threshold settings: chosen on one spacecraft, reported on the other, cross-validated."""
    settings = settings_from(ctx)
    values: dict[str, Sequence[float]] = {
        "p": _numbers(p, float, "--p"),
        "error_buffer": _numbers(error_buffer, int, "--error-buffer"),
        "smoothing_perc": _numbers(smoothing_perc, float, "--smoothing-perc"),
    }
    source = resolve_predictions(predictions, settings)
    try:
        search(TelemanomDataset(settings.data_dir), source, detector.value, values, select, folds)
    finally:
        source.close()


def prediction_spec(predictions: str | None, alias: str | None) -> str:
    """The prediction source named by --predictions or --alias (not both); the 2018 y_hat by default."""
    if alias is None:
        return predictions or "reference"
    if predictions is not None:
        raise EvaluationError("give --predictions or --alias, not both")
    if alias not in ALIASES:
        raise EvaluationError(f"unknown alias {alias!r}; expected one of {', '.join(ALIASES)}")
    return f"alias:{alias}"


@contextmanager
def stream_progress(description: str, total: int) -> Iterator[Callable[[LabelledStream], None]]:
    """A progress bar on stderr, advanced once per stream (predicting all channels takes minutes)."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        task = progress.add_task(description, total=total)

        def advance(stream: LabelledStream) -> None:
            progress.update(task, advance=1, description=f"{description} {stream.channel}")

        yield advance


def summary_table(report: EvaluationReport) -> Table:
    """Per-spacecraft and total results as a rich table."""
    table = Table(title=f"{report.detector} thresholding, predictions: {report.predictions}")
    for column in ("scope", "streams", "TP", "FP", "FN", "P", "R", "F0.5", "F1", "flagged"):
        table.add_column(column, justify="left" if column == "scope" else "right")
    spacecraft_of = [r.stream.spacecraft for r in report.streams]

    def add(name: str, counts: Counts, streams: int) -> None:
        table.add_row(
            name,
            str(streams),
            str(counts.tp),
            str(counts.fp),
            str(counts.fn),
            f"{counts.precision:.1%}",
            f"{counts.recall:.1%}",
            f"{counts.f0_5:.3f}",
            f"{counts.f1:.3f}",
            f"{counts.flagged_share:.1%}",
        )

    for name, counts in sorted(report.by_spacecraft.items()):
        add(name, counts, spacecraft_of.count(name))
    add("total", report.total, len(report.streams))
    return table
