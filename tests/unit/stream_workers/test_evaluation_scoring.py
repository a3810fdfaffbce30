"""Sequence-overlap scoring on hand-made cases with known answers, and its invariants."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evaluation.scoring import Counts, f_beta, score_channel
from producers.dataset import LabelledSequence


def label(start: int, end: int, anomaly_class: str = "point") -> LabelledSequence:
    return LabelledSequence("X-1", start, end, anomaly_class)


def test_touching_an_inclusive_end_counts_as_overlap():
    counts = score_channel([(100, 200)], [label(200, 300), label(0, 100, "contextual")], 1000)
    assert (counts.tp, counts.fp, counts.fn) == (2, 0, 0)
    assert counts.found == {"point": 1, "contextual": 1}


def test_adjacent_ranges_do_not_overlap():
    counts = score_channel([(100, 199)], [label(200, 300)], 1000)
    assert (counts.tp, counts.fp, counts.fn) == (0, 1, 1)
    assert counts.missed == {"point": 1, "contextual": 0}


def test_one_detection_spanning_two_labels_finds_both():
    counts = score_channel([(0, 999)], [label(10, 20), label(500, 600, "contextual")], 1000)
    assert (counts.tp, counts.fp, counts.fn) == (2, 0, 0)


def test_two_detections_on_one_label_are_one_true_positive_and_no_false_positive():
    counts = score_channel([(10, 15), (18, 40)], [label(12, 20)], 100)
    assert (counts.tp, counts.fp, counts.fn) == (1, 0, 0)


def test_detection_inside_and_label_inside_both_match():
    assert score_channel([(50, 60)], [label(0, 100)], 200).tp == 1
    assert score_channel([(0, 100)], [label(50, 60)], 200).tp == 1


def test_point_wise_counts():
    counts = score_channel([(90, 109), (500, 509)], [label(100, 199)], 1000)
    assert (counts.flagged_rows, counts.labelled_rows, counts.flagged_labelled_rows) == (30, 100, 10)
    assert counts.flagged_share == pytest.approx(0.03)
    assert counts.point_precision == pytest.approx(10 / 30)
    assert counts.point_recall == pytest.approx(0.1)


def test_ranges_past_the_split_are_clipped():
    counts = score_channel([(990, 1200)], [label(995, 1100)], 1000)
    assert (counts.flagged_rows, counts.labelled_rows) == (10, 5)


def test_rates_of_summed_counts():
    total = score_channel([(0, 10), (50, 60)], [label(5, 8)], 100) + score_channel(
        [], [label(5, 8, "contextual"), label(20, 30)], 100
    )
    assert (total.tp, total.fp, total.fn) == (1, 1, 2)
    assert total.precision == 0.5 and total.recall == pytest.approx(1 / 3)
    assert total.f1 == pytest.approx(0.4)
    assert total.f0_5 == pytest.approx(1.25 * 0.5 / 3 / (0.25 * 0.5 + 1 / 3))
    assert total.class_recall("point") == 0.5 and total.class_recall("contextual") == 0.0
    assert total.test_rows == 200


def test_f_beta_known_values():
    assert f_beta(0.5, 1.0, 1.0) == pytest.approx(2 / 3)
    assert f_beta(0.5, 1.0, 0.5) == pytest.approx(5 / 9)
    assert f_beta(0.0, 0.0, 1.0) == 0.0


def test_nothing_detected_nothing_labelled_has_zero_rates():
    counts = Counts()
    assert (counts.precision, counts.recall, counts.flagged_share) == (0.0, 0.0, 0.0)


labels_strategy = st.lists(
    st.tuples(st.integers(0, 499), st.integers(0, 100), st.sampled_from(["point", "contextual"])),
    min_size=1,
    max_size=5,
).map(lambda rows: [label(start, min(start + length, 499), cls) for start, length, cls in rows])


@given(labels_strategy)
def test_flagging_everything_finds_everything(labels):
    counts = score_channel([(0, 499)], labels, 500)
    assert counts.recall == 1.0 and counts.flagged_share == 1.0 and counts.point_recall == 1.0
    assert counts.fp == 0 and counts.point_precision == counts.labelled_rows / 500


@given(labels_strategy, st.lists(st.tuples(st.integers(0, 499), st.integers(0, 50)), max_size=6))
def test_every_label_and_detection_is_counted_once(labels, raw):
    detections = [(start, min(start + length, 499)) for start, length in raw]
    counts = score_channel(detections, labels, 500)
    assert counts.tp + counts.fn == len(labels)
    assert counts.fp <= len(detections)
    assert counts.flagged_labelled_rows <= min(counts.flagged_rows, counts.labelled_rows)
