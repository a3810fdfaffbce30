"""A worker under a steady load for ``TMSTREAM_SOAK_S`` seconds (default 1800): is it flat?

One worker on an isolated run (``benchmarks/_harness.py``) scores P-1, D-7 and G-7 replayed with
``--loop`` at ``RATE`` points/s per channel: each loop starts a new stream epoch, so anomalies
keep opening and closing for the whole run (about 29 emissions a loop). Every ``EVERY_S`` seconds
it samples the worker's RSS (``/proc``), the anomalies sink's de-duplication entries
(``tmstream_emission_dedup_entries``, open and closed), points scored and emissions sent. After a
warm-up of a fifth of the run, flat means the last sample's RSS is within 10 % of the warm-up
sample's and the de-duplication entries stay under a bound that does not grow with the run (a
channel's closed anomalies go at its snapshots).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._harness import (
    configuration,
    import_models,
    load_average,
    metric_samples,
    rss_bytes,
    stop,
    testing_stack,
)
from tmstream.ground.exposition import sample_sum

CHANNELS = ("P-1", "D-7", "G-7")
RATE = 100.0
EVERY_S = 30.0


def sample(run: Any, started: float) -> dict[str, Any]:
    samples = metric_samples(run.ports["w1"])
    return {
        "t_s": round(time.monotonic() - started),
        **rss_bytes(run.processes["w1"].pid),
        "dedup_open": sample_sum(samples, "tmstream_emission_dedup_entries", state="open"),
        "dedup_closed": sample_sum(samples, "tmstream_emission_dedup_entries", state="closed"),
        "scored": sample_sum(samples, "tmstream_points_scored_total"),
        "emitted": sample_sum(samples, "tmstream_anomaly_events_emitted_total", sink="kafka"),
        "load_1m": load_average()[0],
    }


def run() -> dict[str, Any]:
    duration = float(os.environ.get("TMSTREAM_SOAK_S", "1800"))
    import_models(CHANNELS)
    with (
        testing_stack() as stack,
        tempfile.TemporaryDirectory() as folder,
        configuration(stack, Path(folder), 1, CHANNELS, 1) as soak,
    ):
        replay = soak.replay("--channels", ",".join(CHANNELS), "--rate", str(RATE), "--loop")
        started = time.monotonic()
        series = []
        try:
            while time.monotonic() - started < duration:
                time.sleep(min(EVERY_S, max(0.0, duration - (time.monotonic() - started))))
                series.append(sample(soak, started))
        finally:
            stop(replay)
    warm = series[max(0, len(series) // 5 - 1)]
    last = series[-1]
    peak_dedup = max(s["dedup_open"] + s["dedup_closed"] for s in series)
    return {
        "duration_s": duration,
        "rate_per_channel": RATE,
        "channels": list(CHANNELS),
        "samples": series,
        "rss_after_warm_up_mb": round(warm["rss_bytes"] / 2**20, 1),
        "rss_at_end_mb": round(last["rss_bytes"] / 2**20, 1),
        "rss_growth_after_warm_up": round(last["rss_bytes"] / warm["rss_bytes"] - 1, 3),
        "dedup_entries_peak": peak_dedup,
        "emitted": last["emitted"],
        "flat": last["rss_bytes"] <= 1.1 * warm["rss_bytes"] and peak_dedup <= 4 * len(CHANNELS) + 64,
    }
