"""Evaluating many streams: per-stream results, per-spacecraft and total counts, CSV and JSON export."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.detections import DetectorKind, ScoredRange, channel_detections
from evaluation.predictions import PredictionSource
from evaluation.scoring import Counts, score_channel
from evaluation.streams import LabelledStream
from producers.dataset import TelemanomDataset
from stream_workers.thresholding.parameters import ThresholdParameters
from tmstream.ground.exceptions import DataError


@dataclass(frozen=True)
class StreamResult:
    """One label-file row: its detections and their counts."""

    stream: LabelledStream
    detections: tuple[ScoredRange, ...]
    counts: Counts


@dataclass(frozen=True)
class EvaluationReport:
    """Results of one evaluation run, with the groupings the paper reports."""

    detector: str
    predictions: str
    streams: tuple[StreamResult, ...]

    @property
    def by_spacecraft(self) -> dict[str, Counts]:
        groups: dict[str, Counts] = {}
        for result in self.streams:
            name = result.stream.spacecraft
            groups[name] = groups.get(name, Counts()) + result.counts
        return groups

    @property
    def total(self) -> Counts:
        total = Counts()
        for result in self.streams:
            total = total + result.counts
        return total

    def rows(self) -> list[dict[str, Any]]:
        """Flat rows: one per stream, one per spacecraft, one total (scope tells which)."""
        rows = [
            {
                "scope": "channel",
                "name": r.stream.channel,
                "row": r.stream.row,
                "spacecraft": r.stream.spacecraft,
                **r.counts.summary(),
            }
            for r in self.streams
        ]
        rows += [
            {"scope": "spacecraft", "name": name, "row": "", "spacecraft": name, **counts.summary()}
            for name, counts in sorted(self.by_spacecraft.items())
        ]
        rows.append({"scope": "total", "name": "total", "row": "", "spacecraft": "", **self.total.summary()})
        return rows

    def write_csv(self, path: Path) -> None:
        rows = self.rows()
        with Path(path).open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    def to_json(self) -> dict[str, Any]:
        return {
            "detector": self.detector,
            "predictions": self.predictions,
            "total": self.total.summary(),
            "spacecraft": {name: c.summary() for name, c in sorted(self.by_spacecraft.items())},
            "channels": [
                {
                    "channel": r.stream.channel,
                    "row": r.stream.row,
                    "spacecraft": r.stream.spacecraft,
                    **r.counts.summary(),
                    "labels": [[s.start, s.end, s.anomaly_class] for s in r.stream.info.sequences],
                    "detections": [[d.start, d.end, d.score] for d in r.detections],
                }
                for r in self.streams
            ],
        }


def checked_predictions(
    source: PredictionSource, channel: str, test_rows: int, params: ThresholdParameters
) -> np.ndarray:
    """A channel's predictions, refused unless aligned like the 2018 y_hat (a wrong model or file)."""
    predictions = source.predictions(channel)
    expected = test_rows - params.l_s - params.n_predictions
    if len(predictions) != expected:
        raise DataError(
            f"{source.name}: {len(predictions)} predictions for channel {channel}, "
            f"expected {expected} (test rows - l_s - n_predictions)"
        )
    return predictions


def evaluate_streams(
    dataset: TelemanomDataset,
    streams: Sequence[LabelledStream],
    source: PredictionSource,
    detector: DetectorKind,
    params: ThresholdParameters,
    on_stream: Callable[[LabelledStream], None] | None = None,
) -> EvaluationReport:
    """Threshold each channel's predictions with the chosen detector and score every stream."""

    def detect(channel: str) -> list[ScoredRange]:
        telemetry = dataset.load(channel)[:, 0]
        predictions = checked_predictions(source, channel, len(telemetry), params)
        return channel_detections(detector, channel, predictions, telemetry, params)

    return score_streams(streams, detect, detector, source.name, on_stream)


def score_streams(
    streams: Sequence[LabelledStream],
    detect: Callable[[str], list[ScoredRange]],
    detector: str,
    predictions: str,
    on_stream: Callable[[LabelledStream], None] | None = None,
) -> EvaluationReport:
    """Score every stream's detections; ``on_stream`` is called after each (progress display).

    detect: a channel's detections, by thresholding predictions or read from recorded events.
    A channel listed twice in the label file is detected once and scored against each row.
    """
    cache: dict[str, list[ScoredRange]] = {}
    results = []
    for stream in streams:
        if stream.channel not in cache:
            cache[stream.channel] = detect(stream.channel)
        detections = cache[stream.channel]
        counts = score_channel(
            [(d.start, d.end) for d in detections], stream.info.sequences, stream.info.test_rows
        )
        results.append(StreamResult(stream, tuple(detections), counts))
        if on_stream is not None:
            on_stream(stream)
    return EvaluationReport(detector=detector, predictions=predictions, streams=tuple(results))
