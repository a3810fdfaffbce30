"""The per-row threshold drawn in reports is the one the batch used, with its gaps shown."""

from __future__ import annotations

import numpy as np

from evaluation.detections import channel_detections
from evaluation.trace import channel_trace


def test_a_high_detection_peaks_above_the_drawn_threshold(reference_channel, params):
    p1 = reference_channel("P-1")
    trace = channel_trace(p1.predictions, p1.telemetry, params, p1.backfill_warmup)
    first = channel_detections("batch", "P-1", p1.predictions, p1.telemetry, params)[0]
    assert (first.start, first.end) == (2131, 2350)
    inside = (trace.rows >= first.start) & (trace.rows <= first.end)
    peak = int(np.argmax(np.where(inside, trace.smoothed, -np.inf)))
    assert trace.smoothed[peak] > trace.threshold[peak]
    assert np.array_equal(trace.smoothed, p1.smoothed_errors)


def test_rows_the_batch_never_examines_have_no_threshold(reference_channel, params):
    a8 = reference_channel("A-8")
    trace = channel_trace(a8.predictions, a8.telemetry, params, a8.backfill_warmup)
    undecided = trace.rows[np.isnan(trace.threshold)]
    # ACCURACY.md: the last window never examines errors 7981-8044 (rows 8231-8294)
    assert (undecided.min(), undecided.max(), len(undecided)) == (8231, 8294, 64)


def test_a_synthetic_detection_peaks_above_the_drawn_threshold(synth_channel, params):
    a1 = synth_channel("A-1")
    trace = channel_trace(a1.predictions, a1.telemetry, params, a1.backfill_warmup)
    detections = channel_detections("batch", "A-1", a1.predictions, a1.telemetry, params)
    assert detections
    for found in detections:
        inside = (trace.rows >= found.start) & (trace.rows <= found.end)
        peak = int(np.argmax(np.where(inside, trace.smoothed, -np.inf)))
        assert trace.smoothed[peak] > trace.threshold[peak]
    assert np.array_equal(trace.smoothed, a1.smoothed_errors)
