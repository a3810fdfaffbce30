"""Sequence-overlap scoring (Telemanom's ``evaluate_sequences``) with point-wise guards.

A labelled sequence is found (TP) when any detection overlaps it, missed (FN) otherwise; a detection
overlapping no labelled sequence is a false positive. Ranges are inclusive test-row indices. The
share of rows flagged and point-wise precision/recall expose a detector that flags everything.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields

import numpy as np

from producers.dataset import LabelledSequence

ANOMALY_CLASSES = ("point", "contextual")


def overlaps(start: int, end: int, other_start: int, other_end: int) -> bool:
    """Whether two inclusive ranges share at least one row."""
    return start <= other_end and other_start <= end


def ratio(numerator: int, denominator: int) -> float:
    """numerator / denominator, 0.0 when the denominator is 0 (nothing to measure)."""
    return numerator / denominator if denominator else 0.0


def f_beta(precision: float, recall: float, beta: float) -> float:
    """Weighted harmonic mean of precision and recall; beta < 1 favours precision."""
    weight = beta * beta
    denominator = weight * precision + recall
    return (1 + weight) * precision * recall / denominator if denominator else 0.0


@dataclass(frozen=True)
class Counts:
    """Additive counts of one stream or of a group of streams; the rates are derived from them.

    found/missed: labelled sequences per anomaly class. false_positives: detections matching no label.
    test_rows, flagged_rows, labelled_rows, flagged_labelled_rows: for the point-wise measures.
    """

    found: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ANOMALY_CLASSES, 0))
    missed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ANOMALY_CLASSES, 0))
    false_positives: int = 0
    test_rows: int = 0
    flagged_rows: int = 0
    labelled_rows: int = 0
    flagged_labelled_rows: int = 0

    @property
    def tp(self) -> int:
        return sum(self.found.values())

    @property
    def fn(self) -> int:
        return sum(self.missed.values())

    @property
    def fp(self) -> int:
        return self.false_positives

    @property
    def precision(self) -> float:
        return ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        return ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float:
        return f_beta(self.precision, self.recall, 1.0)

    @property
    def f0_5(self) -> float:
        return f_beta(self.precision, self.recall, 0.5)

    def class_recall(self, anomaly_class: str) -> float:
        found = self.found.get(anomaly_class, 0)
        return ratio(found, found + self.missed.get(anomaly_class, 0))

    @property
    def flagged_share(self) -> float:
        return ratio(self.flagged_rows, self.test_rows)

    @property
    def point_precision(self) -> float:
        return ratio(self.flagged_labelled_rows, self.flagged_rows)

    @property
    def point_recall(self) -> float:
        return ratio(self.flagged_labelled_rows, self.labelled_rows)

    def __add__(self, other: Counts) -> Counts:
        classes = sorted(set(self.found) | set(other.found) | set(self.missed) | set(other.missed))
        return Counts(
            found={c: self.found.get(c, 0) + other.found.get(c, 0) for c in classes},
            missed={c: self.missed.get(c, 0) + other.missed.get(c, 0) for c in classes},
            **{
                f.name: getattr(self, f.name) + getattr(other, f.name)
                for f in fields(self)
                if f.name not in ("found", "missed")
            },
        )

    def summary(self) -> dict[str, float | int]:
        """Flat, JSON/CSV-ready numbers."""
        row: dict[str, float | int] = {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": self.precision,
            "recall": self.recall,
            "f0_5": self.f0_5,
            "f1": self.f1,
        }
        for anomaly_class in ANOMALY_CLASSES:
            row[f"tp_{anomaly_class}"] = self.found.get(anomaly_class, 0)
            row[f"fn_{anomaly_class}"] = self.missed.get(anomaly_class, 0)
            row[f"recall_{anomaly_class}"] = self.class_recall(anomaly_class)
        row.update(
            flagged_share=self.flagged_share,
            point_precision=self.point_precision,
            point_recall=self.point_recall,
            test_rows=self.test_rows,
            flagged_rows=self.flagged_rows,
            labelled_rows=self.labelled_rows,
        )
        return row


def rows_covered(ranges: Iterable[tuple[int, int]], test_rows: int) -> np.ndarray:
    """Boolean mask of the test rows inside any inclusive range (clipped to the split)."""
    mask = np.zeros(test_rows, dtype=bool)
    for start, end in ranges:
        mask[max(start, 0) : max(min(end, test_rows - 1) + 1, 0)] = True
    return mask


def score_channel(
    detections: Sequence[tuple[int, int]], labels: Sequence[LabelledSequence], test_rows: int
) -> Counts:
    """Score one stream's detections against its labelled sequences.

    detections: inclusive test-row ranges the detector reported.
    labels: the stream's labelled anomalies.
    test_rows: rows in the channel's test split (denominator of the flagged share).
    """
    found = dict.fromkeys(ANOMALY_CLASSES, 0)
    missed = dict.fromkeys(ANOMALY_CLASSES, 0)
    for label in labels:
        hit = any(overlaps(start, end, label.start, label.end) for start, end in detections)
        target = found if hit else missed
        target[label.anomaly_class] = target.get(label.anomaly_class, 0) + 1
    false_positives = sum(
        not any(overlaps(start, end, label.start, label.end) for label in labels) for start, end in detections
    )
    flagged = rows_covered(detections, test_rows)
    labelled = rows_covered(((label.start, label.end) for label in labels), test_rows)
    return Counts(
        found=found,
        missed=missed,
        false_positives=false_positives,
        test_rows=test_rows,
        flagged_rows=int(flagged.sum()),
        labelled_rows=int(labelled.sum()),
        flagged_labelled_rows=int((flagged & labelled).sum()),
    )
