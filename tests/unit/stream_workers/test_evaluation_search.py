"""The settings search: its grid, its tie-break towards the defaults, and held-out folds."""

from __future__ import annotations

from dataclasses import replace

import pytest

from evaluation.predictions import PredictionFolder
from evaluation.report import evaluate_streams
from evaluation.search import choose, cross_validate, grid, on_spacecraft
from evaluation.streams import labelled_streams
from stream_workers.thresholding.parameters import ThresholdParameters

CHANNELS = ["P-2", "D-14", "T-12", "C-2", "M-6", "S-1"]


@pytest.fixture(scope="module")
def evaluate(nasa, reference_dir):
    source = PredictionFolder(reference_dir / "y_hat", "reference")
    streams = labelled_streams(nasa, channels=CHANNELS)

    def run(params: ThresholdParameters):
        return evaluate_streams(nasa, streams, source, "batch", params)

    return run


def test_grid_is_the_product_with_the_rest_unchanged():
    candidates = grid(ThresholdParameters(), {"p": [0.1, 0.2], "error_buffer": [50, 75]})
    assert [(c.p, c.error_buffer) for c in candidates] == [(0.1, 50), (0.1, 75), (0.2, 50), (0.2, 75)]
    assert {(c.smoothing_perc, c.batch_size) for c in candidates} == {(0.05, 70)}


def test_equal_results_go_to_the_settings_closest_to_the_defaults(evaluate):
    base = ThresholdParameters()
    nudged = replace(base, p=0.1301)
    reports = [evaluate(nudged), evaluate(base)]
    assert reports[0].total == reports[1].total
    assert choose(reports, [nudged, base], on_spacecraft("MSL"), base) == 1


def test_held_out_folds_cover_every_stream_once_p2s_two_rows_included(evaluate):
    base = ThresholdParameters()
    params = [base, replace(base, p=0.3)]
    reports = [evaluate(p) for p in params]
    assert [r.stream.channel for r in reports[0].streams].count("P-2") == 2
    held_out, chosen = cross_validate(reports, params, base, folds=3)
    assert held_out.test_rows == reports[0].total.test_rows
    assert held_out.tp + held_out.fn == reports[0].total.tp + reports[0].total.fn
    assert len(chosen) == 3
