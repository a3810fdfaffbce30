"""`tmstream report`: per-channel plots and an HTML index of an evaluation, to see why it scored so."""

from __future__ import annotations

from pathlib import Path

import typer

from evaluation.detections import REFERENCE_RUN_NO_BACKFILL, ScoredRange, channel_detections
from evaluation.predictions import resolve_predictions
from evaluation.report import checked_predictions, score_streams
from evaluation.streams import labelled_streams
from evaluation.trace import ChannelTrace, channel_trace
from producers.dataset import TelemanomDataset
from stream_workers.configuration import threshold_parameters
from tmstream.cli.context import console, settings_from
from tmstream.cli.evaluate import DetectorSource, EvaluationError, prediction_spec, stream_progress


def report(
    ctx: typer.Context,
    channel: list[str] | None = typer.Option(None, "--channel", "-c", help="Channel(s) to plot."),
    all_channels: bool = typer.Option(False, "--all", help="Every labelled channel."),
    source: DetectorSource = typer.Option(DetectorSource.batch, "--source", help="batch or stream detector."),
    predictions: str | None = typer.Option(
        None, "--predictions", help="'reference' (default), 'alias:<alias>' or a folder of <channel>.npy."
    ),
    alias: str | None = typer.Option(None, "--alias", help="Predict with the model under this alias."),
    out: Path = typer.Option(..., "--out", help="Folder for the PNGs and index.html."),
) -> None:
    """Plot telemetry, prediction, smoothed error and threshold with labelled and detected ranges."""
    from evaluation.plots import plot_name, render_channel, write_index  # matplotlib: the report extra

    if bool(channel) == all_channels:
        raise EvaluationError("choose --channel (one or more) or --all")
    settings = settings_from(ctx)
    dataset = TelemanomDataset(settings.data_dir)
    streams = labelled_streams(dataset, None, channel or None)
    params = threshold_parameters(settings)
    prediction_source = resolve_predictions(prediction_spec(predictions, alias), settings)
    traces: dict[str, ChannelTrace] = {}

    def detect(name: str) -> list[ScoredRange]:
        telemetry = dataset.load(name)[:, 0]
        predicted = checked_predictions(prediction_source, name, len(telemetry), params)
        traces[name] = channel_trace(predicted, telemetry, params, name not in REFERENCE_RUN_NO_BACKFILL)
        return channel_detections(source.value, name, predicted, telemetry, params)

    try:
        with stream_progress(f"{source.value} thresholding", len(streams)) as advance:
            evaluation = score_streams(streams, detect, source.value, prediction_source.name, advance)
    finally:
        prediction_source.close()
    out.mkdir(parents=True, exist_ok=True)
    with stream_progress("plotting", len(evaluation.streams)) as advance:
        for result in evaluation.streams:
            render_channel(result, traces[result.stream.channel], out / plot_name(result))
            advance(result.stream)
    write_index(evaluation, evaluation.streams, out / "index.html")
    console.print(f"wrote {len(evaluation.streams)} plots and {out / 'index.html'}")
