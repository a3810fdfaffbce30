"""Searching threshold settings without fooling ourselves (docs/ACCURACY.md, "Trying to beat ...").

With 105 labelled sequences one detection moves F0.5 by about 0.01, so a grid searched and scored on
the same streams flatters itself. Settings are chosen on one group (SMAP) and reported on the other
untouched (MSL), and the same choice is cross-validated by channel: choose on k-1 folds, score the
held-out fold, add the held-out counts up.

    tmstream evaluate search --detector stream --select SMAP \\
        --p 0.1,0.13,0.16,0.2,0.25 --error-buffer 25,50,75,100 --smoothing-perc 0.03,0.05,0.08,0.1,0.12
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from typing import Any

from evaluation.detections import DetectorKind
from evaluation.predictions import PredictionSource
from evaluation.report import EvaluationReport, StreamResult, evaluate_streams
from evaluation.scoring import Counts
from evaluation.streams import LabelledStream, labelled_streams
from producers.dataset import TelemanomDataset
from stream_workers.thresholding.parameters import ThresholdParameters

SEARCHED = ("p", "error_buffer", "smoothing_perc")
StreamFilter = Callable[[StreamResult], bool]


def grid(base: ThresholdParameters, values: dict[str, Sequence[float]]) -> list[ThresholdParameters]:
    """Every combination of the given values, the other parameters as in ``base``."""
    names = list(values)
    changes: list[dict[str, Any]] = [
        dict(zip(names, c, strict=True)) for c in itertools.product(*values.values())
    ]
    return [replace(base, **change) for change in changes]


def on_spacecraft(name: str) -> StreamFilter:
    return lambda result: result.stream.spacecraft == name


def in_fold(fold_of: dict[str, int], fold: int, held_out: bool) -> StreamFilter:
    return lambda result: (fold_of[result.stream.channel] == fold) == held_out


def counts_of(report: EvaluationReport, keep: StreamFilter) -> Counts:
    total = Counts()
    for result in report.streams:
        if keep(result):
            total = total + result.counts
    return total


def distance(params: ThresholdParameters, base: ThresholdParameters) -> float:
    """Relative distance of the searched parameters from the defaults (tie-break: prefer closer)."""
    return sum(abs(getattr(params, n) - getattr(base, n)) / abs(getattr(base, n)) for n in SEARCHED)


def choose(
    reports: Sequence[EvaluationReport],
    params: Sequence[ThresholdParameters],
    keep: StreamFilter,
    base: ThresholdParameters,
) -> int:
    """Index of the best candidate on the kept streams: highest F0.5, then the lower flagged share,
    then the closer to the defaults."""

    def rank(index: int) -> tuple[float, float, float]:
        counts = counts_of(reports[index], keep)
        return (round(counts.f0_5, 6), -counts.flagged_share, -distance(params[index], base))

    return max(range(len(reports)), key=rank)


def channel_folds(streams: Sequence[LabelledStream], folds: int) -> dict[str, int]:
    """Fold of each channel: index in sorted order mod ``folds`` (a channel's rows stay together)."""
    return {channel: i % folds for i, channel in enumerate(sorted({s.channel for s in streams}))}


def cross_validate(
    reports: Sequence[EvaluationReport],
    params: Sequence[ThresholdParameters],
    base: ThresholdParameters,
    folds: int,
) -> tuple[Counts, list[int]]:
    """Held-out counts summed over the folds, and the candidate chosen for each fold."""
    fold_of = channel_folds([r.stream for r in reports[0].streams], folds)
    held_out, chosen = Counts(), []
    for fold in range(folds):
        best = choose(reports, params, in_fold(fold_of, fold, held_out=False), base)
        chosen.append(best)
        held_out = held_out + counts_of(reports[best], in_fold(fold_of, fold, held_out=True))
    return held_out, chosen


def describe(counts: Counts) -> str:
    return (
        f"TP {counts.tp:3} FP {counts.fp:3} FN {counts.fn:3} "
        f"P {counts.precision:6.1%} R {counts.recall:6.1%} F0.5 {counts.f0_5:.3f} "
        f"flagged {counts.flagged_share:5.1%} point P {counts.point_precision:5.1%}"
    )


def search(
    dataset: TelemanomDataset,
    source: PredictionSource,
    detector: DetectorKind,
    values: dict[str, Sequence[float]],
    select: str,
    folds: int,
) -> None:
    """Run the grid, print the choice on ``select``, the other spacecraft untouched, and the CV."""
    streams = labelled_streams(dataset)
    base = ThresholdParameters()
    candidates = grid(base, values)
    reports = []
    for number, params in enumerate(candidates, start=1):
        reports.append(evaluate_streams(dataset, streams, source, detector, params))
        print(f"{number}/{len(candidates)} {asdict(params)}", flush=True)
    shown = {f"chosen on {select}": choose(reports, candidates, on_spacecraft(select), base)}
    if base in candidates:
        shown = {"defaults": candidates.index(base), **shown}
    for name, index in shown.items():
        print(f"{name}: {settings_of(candidates[index])}")
        for group in sorted({s.spacecraft for s in streams}):
            role = "tuned on" if group == select else "untouched"
            counts = counts_of(reports[index], on_spacecraft(group))
            print(f"  {group:5} ({role:9}) {describe(counts)}")
        print(f"  total {'':11} {describe(reports[index].total)}")
    held_out, chosen = cross_validate(reports, candidates, base, folds)
    print(f"channel CV ({folds} folds), held out: {describe(held_out)}")
    for fold, index in enumerate(chosen):
        print(f"  fold {fold}: {settings_of(candidates[index])}")


def settings_of(params: ThresholdParameters) -> str:
    return ", ".join(f"{name} {getattr(params, name)}" for name in SEARCHED)
