"""`tmstream evaluate`: detect anomalies on the test split from saved predictions and score them."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from producers.dataset import TelemanomDataset
from stream_workers.evaluation.predictions import resolve_predictions
from stream_workers.evaluation.report import EvaluationReport, evaluate_streams
from stream_workers.evaluation.scoring import Counts
from stream_workers.evaluation.streams import LabelledStream, labelled_streams
from stream_workers.thresholding.parameters import ThresholdParameters
from tmstream.cli.context import console, emit_json, err_console, settings_from
from tmstream.exceptions import TmstreamError


class DetectorSource(StrEnum):
    batch = "batch"
    stream = "stream"


class EvaluationError(TmstreamError):
    """The evaluation cannot run with the options given."""


def evaluate(
    ctx: typer.Context,
    source: DetectorSource = typer.Option(
        DetectorSource.batch, "--source", help="batch: the 2018 batch run; stream: the causal detector."
    ),
    predictions: str = typer.Option(
        "reference",
        "--predictions",
        help="'reference' (the 2018 run's y_hat) or a folder of <channel>.npy predictions.",
    ),
    spacecraft: str | None = typer.Option(None, "--spacecraft", help="SMAP or MSL."),
    channels: str | None = typer.Option(None, "--channels", help="Comma-separated channels, e.g. A-1,P-1."),
    out: Path | None = typer.Option(None, "--out", help="Write per-channel and summary rows as CSV."),
    json_output: bool = typer.Option(False, "--json", help="Print the full report as JSON."),
) -> None:
    """Detect and score anomalies on the test split (Telemanom's sequence-overlap scoring)."""
    settings = settings_from(ctx)
    dataset = TelemanomDataset(settings.data_dir)
    wanted = [c.strip() for c in channels.split(",") if c.strip()] if channels else None
    streams = labelled_streams(dataset, spacecraft, wanted)
    if not streams:
        raise EvaluationError("no channel matches the --spacecraft/--channels filter")
    prediction_source = resolve_predictions(predictions, settings)
    params = ThresholdParameters.from_settings(settings)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        task = progress.add_task(f"{source.value} thresholding", total=len(streams))

        def advance(stream: LabelledStream) -> None:
            progress.update(task, advance=1, description=f"{source.value} thresholding {stream.channel}")

        report = evaluate_streams(dataset, streams, prediction_source, source.value, params, advance)
    if out is not None:
        report.write_csv(out)
    if json_output:
        emit_json(report.to_json())
        return
    console.print(summary_table(report))
    if out is not None:
        console.print(f"wrote {out}")


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
