"""Rows that must not be sent: NaN/inf values and the wrong width, reported with channel and index."""

from __future__ import annotations

import math

import numpy as np

from producers.publisher import RejectedRow, check_rows


def test_array_rows_with_nan_or_inf_are_rejected_by_index() -> None:
    rows = np.zeros((5, 3))
    rows[1, 0] = np.nan
    rows[3, 2] = -np.inf
    lists, rejected = check_rows("P-1", 100, rows, 3)
    assert len(lists) == 5
    assert [(r.index, r.reason) for r in rejected] == [(101, "nan_or_inf"), (103, "nan_or_inf")]
    assert rejected[0].detail == "value 0 is nan"
    assert rejected[1].detail == "value 2 is -inf"


def test_array_of_the_wrong_width_rejects_every_row() -> None:
    _, rejected = check_rows("P-1", 0, np.zeros((3, 55)), 25)
    assert rejected == [RejectedRow("P-1", i, "wrong_width", "55 values, expected 25") for i in range(3)]


def test_list_rows_are_checked_one_by_one() -> None:
    rows = [[0.0, 1.0], [0.0], [math.inf, 0.0], [0.5, 0.5]]
    lists, rejected = check_rows("T-1", 10, rows, 2)
    assert lists[3] == [0.5, 0.5]
    assert [(r.index, r.reason) for r in rejected] == [(11, "wrong_width"), (12, "nan_or_inf")]


def test_clean_rows_pass() -> None:
    lists, rejected = check_rows("P-1", 0, np.ones((4, 25)), 25)
    assert rejected == [] and list(lists[0]) == [1.0] * 25
