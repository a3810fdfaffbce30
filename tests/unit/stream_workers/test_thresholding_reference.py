"""The batch re-implementation against the 2018 run's own outputs (smoothed errors, log, results)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evaluation.predictions import PredictionFolder
from evaluation.report import evaluate_streams
from evaluation.streams import labelled_streams
from producers.dataset import TelemanomDataset
from stream_workers.thresholding.batch import detect_batch
from stream_workers.thresholding.smoothing import EwmaState, ewma, prediction_errors, smooth_errors


def test_smoothed_errors_equal_the_reference_for_every_channel(reference_channel, labelled_channels, params):
    for name in labelled_channels:
        channel = reference_channel(name)
        actuals = channel.telemetry[params.l_s : params.l_s + len(channel.predictions)]
        smoothed = smooth_errors(
            prediction_errors(channel.predictions, actuals), params, channel.backfill_warmup
        )
        np.testing.assert_allclose(smoothed, channel.smoothed_errors, rtol=0, atol=1e-9, err_msg=name)


def test_backfill_replaces_the_warmup_with_the_mean_of_twice_its_length(reference_channel, params):
    channel = reference_channel("P-1")
    actuals = channel.telemetry[params.l_s : params.l_s + len(channel.predictions)]
    raw = ewma(prediction_errors(channel.predictions, actuals), params.smoothing_span)
    assert np.all(channel.smoothed_errors[: params.l_s] == np.mean(raw[: 2 * params.l_s]))
    assert not np.allclose(raw[: params.l_s], channel.smoothed_errors[: params.l_s])


def test_incremental_ewma_equals_the_batch_ewma_bit_for_bit(reference_channel, params):
    channel = reference_channel("S-2")
    errors = prediction_errors(
        channel.predictions, channel.telemetry[params.l_s : params.l_s + len(channel.predictions)]
    )
    state = EwmaState(params.smoothing_span)
    assert [state.update(float(e)) for e in errors] == ewma(errors, params.smoothing_span).tolist()


def test_incremental_ewma_equals_the_batch_ewma_on_a_synthetic_channel(synth_channel, params):
    channel = synth_channel("A-5")
    errors = prediction_errors(
        channel.predictions, channel.telemetry[params.l_s : params.l_s + len(channel.predictions)]
    )
    state = EwmaState(params.smoothing_span)
    assert [state.update(float(e)) for e in errors] == ewma(errors, params.smoothing_span).tolist()


@pytest.fixture(scope="module")
def reference_report(nasa: TelemanomDataset, reference_dir: Path, params):
    source = PredictionFolder(reference_dir / "y_hat", "reference")
    return evaluate_streams(nasa, labelled_streams(nasa), source, "batch", params)


def test_every_stream_matches_the_2018_log(reference_report, logged_streams):
    ours = [
        (r.stream.row, r.stream.channel, r.counts.tp, r.counts.fp, r.counts.fn)
        for r in reference_report.streams
    ]
    logged = [(s.row, s.channel, s.tp, s.fp, s.fn) for s in logged_streams]
    assert ours == logged


def test_totals_reproduce_the_published_run(reference_report):
    total = reference_report.total
    assert abs(total.tp - 84) <= 3 and abs(total.fn - 21) <= 3 and abs(total.fp - 11) <= 3
    assert total.tp + total.fn == 105
    smap = reference_report.by_spacecraft["SMAP"]
    assert (round(smap.precision, 3), round(smap.recall, 3)) == (0.855, 0.855)
    assert round(reference_report.by_spacecraft["MSL"].recall, 3) == 0.694


# Sequences (error indices, i.e. test rows - l_s) and scores of the same run, as published in
# khundman/telemanom results/2018-05-19_15.00.10.csv (tp_sequences + fp_sequences, scores).
PUBLISHED_2018 = {
    "P-1": (
        [(1881, 2100), (2940, 3010), (4270, 4340)],
        [12.020106408800693, 11.719987209162486, 12.409526767566376],
    ),
    "E-3": ([(5320, 5390)], [260.3942307249092]),
    "A-8": (
        [(7630, 7700), (7770, 7980), (8045, 8115)],
        [9.565872987945752, 9.470574818696827, 8.255988873505697],
    ),
    "C-2": ([(0, 194)], [5.989386778506669]),
    "D-15": ([(1502, 1898)], [4.793878595196599]),
    "T-8": ([(537, 785), (1024, 1237)], [23.050914314194923, 23.036305640168262]),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_2018))
def test_sequences_and_scores_equal_the_published_results(name, reference_channel, params):
    channel = reference_channel(name)
    detection = detect_batch(channel.predictions, channel.telemetry, params, channel.backfill_warmup)
    ranges, scores = PUBLISHED_2018[name]
    assert [(s.start - params.l_s, s.end - params.l_s) for s in detection.sequences] == ranges
    np.testing.assert_allclose([s.score for s in detection.sequences], scores, rtol=1e-9)
