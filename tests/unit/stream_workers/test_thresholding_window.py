"""Window primitives against the 2018 code's loop semantics and hand-computed pruning."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from stream_workers.thresholding.batch import window_bounds
from stream_workers.thresholding.parameters import ThresholdParameters
from stream_workers.thresholding.window import _prune, buffered, consecutive_runs, sequences_of


def loop_buffered(anomalous: list[bool], error_buffer: int, low: int, high: int) -> list[int]:
    """The 2018 loop: every offset 0..error_buffer-1 either side, kept inside [low, high]."""
    found: set[int] = set()
    for x, is_anomalous in enumerate(anomalous):
        if is_anomalous:
            for b in range(error_buffer):
                found.update(i for i in (x + b, x - b) if low <= i <= high)
    return sorted(found)


@given(
    st.lists(st.booleans(), min_size=1, max_size=300),
    st.integers(0, 30),
    st.integers(0, 320),
    st.integers(0, 320),
)
def test_buffered_matches_the_2018_loop(anomalous, error_buffer, low, high):
    expected = loop_buffered(anomalous, error_buffer, low, high)
    assert buffered(np.array(anomalous), error_buffer - 1, low, high).tolist() == expected


def test_runs_and_sequences():
    indices = np.array([1, 2, 3, 7, 9, 10])
    assert consecutive_runs(indices) == [(1, 3), (7, 7), (9, 10)]
    assert sequences_of(indices) == [(1, 3), (9, 10)]
    assert consecutive_runs(np.array([], dtype=np.int64)) == []


def test_pruning_keeps_sequences_clearly_above_the_rest():
    e_s = np.zeros(40)
    e_s[[2, 12, 22]] = [10.0, 9.5, 2.0]
    flagged = np.array([1, 2, 3, 11, 12, 13, 21, 22, 23])
    # peaks 10, 9.5, 2 then the highest unflagged error 1: 10 -> 9.5 is within p but 9.5 -> 2 is
    # not, so the marks are reset and 2 -> 1 (50 %) keeps the last one: nothing is removed
    kept = _prune([(1, 3), (11, 13), (21, 23)], e_s, 1.0, flagged, 0.13)
    assert kept.tolist() == flagged.tolist()
    # with the highest unflagged error at 1.9 the peak of 2 is within p of it and is removed
    kept = _prune([(1, 3), (11, 13), (21, 23)], e_s, 1.9, flagged, 0.13)
    assert kept.tolist() == [1, 2, 3, 11, 12, 13]


def test_pruning_drops_everything_close_to_normal_errors():
    e_s = np.array([0.0, 1.0, 0.0, 0.0])
    assert _prune([(0, 2)], e_s, 0.95, np.array([0, 1, 2]), 0.13).tolist() == []


def test_window_bounds_follow_the_2018_layout():
    params = ThresholdParameters()
    assert window_bounds(1500, params) == [(0, 1500)]
    assert window_bounds(2169, params) == [(0, 2169)]
    assert window_bounds(2170, params) == [(0, 2100), (70, 2170)]
    bounds = window_bounds(2365, params)
    assert bounds[0] == (0, 2100) and bounds[-1] == (210, 2365) and len(bounds) == 4
