"""The whole pipeline vs the engine alone on the same windows, and event-time → scored latency.

Three measurements on isolated runs of one worker (``benchmarks/_harness.py``), beside the engine:

- **overhead**: the test split of the channels is replayed first, then the worker starts and scores
  the backlog; points/s from its first scored point to its last, against the engine alone on the
  same series in this process in the same inference policy (before and after the pipeline runs, to
  bracket the shared machine's load), for ``hybrid`` (the default) and ``windowed``; the engine's
  cost per point of each mode. The replay runs before, not during, the scoring so its CPU
  does not count as pipeline overhead (in production it runs on other machines).
- **steady rate**: ``tmstream replay --rate RATE`` into a running worker (hybrid); after each channel's first
  window and a warm-up, ``tmstream_event_to_scored_seconds`` is scraped at the start and end of
  ``STEADY_S`` seconds and p50/p99 are taken from the bucket deltas.
- **max rate**: ``tmstream replay --max`` into a running worker; the same quantiles over the run
  (with a backlog, latency is the backlog's age, not the engine's).

The worker observes the latency of the newest point of each channel's micro-batch, so the figures
are per channel batch; at a steady rate a batch holds about one point per channel.

``TMSTREAM_BENCH_CHANNELS``: channels of the overhead and max-rate runs (comma-separated, or ``all``;
default the six demo channels); ``TMSTREAM_BENCH_RATE_CHANNELS``: channels of the steady-rate run
(default ``all``, the 82 of the data set). Runs on the testing stack (started if it is not up).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._harness import (
    Buckets,
    Configuration,
    bucket_quantile,
    configuration,
    histogram_buckets,
    import_models,
    load_average,
    metric_sum,
    stop,
    testing_stack,
)
from tmstream.ground.settings import Settings

DEMO_CHANNELS = ("P-1", "A-5", "A-6", "D-14", "F-5", "P-11")
LATENCY = "tmstream_event_to_scored_seconds"
RATE = 10.0
WARMUP_S = 15.0  # past the first window: model loads and the first scoring of every channel
STEADY_S = 60.0
TIMEOUT_S = 900.0
TARGET_OVERHEAD = 0.20
POLICIES = ("hybrid", "windowed")  # the backlog run of each, beside the engine alone in that policy
TARGET_P99_S = 0.25
# time in StreamScorer.score (engine, thresholds, metrics), windows scored, micro-batches scored
WORK = ("tmstream_scoring_seconds_sum", "tmstream_batch_windows_sum", "tmstream_batch_windows_count")


def channels_from(variable: str, default: str, stack: Settings) -> tuple[str, ...]:
    raw = os.environ.get(variable, default)
    if raw == "all":
        return tuple(sorted(p.stem for p in (stack.data_dir / "test").glob("*.npy")))
    return tuple(c.strip() for c in raw.split(",") if c.strip())


def engine_alone(stack: Settings, channels: tuple[str, ...]) -> dict[str, Any]:
    """The engine alone on each channel's whole test split, champion weights, in both policies:
    ``windowed`` (``predict_series`` for every channel) and ``hybrid`` (what the worker computes:
    windows for versions measured windowed, one carried pass with the guard's checks for the
    stateful ones); points/s of each, and the cost per point of each mode."""
    from model_store.engine import InferenceEngine
    from model_store.mode_measurement import guarded_series
    from model_store.registry import ModelRegistry

    registry = ModelRegistry(stack)
    weights = {c: registry.load_alias(c) for c in channels}
    series = {c: np.load(stack.data_dir / "test" / f"{c}.npy") for c in channels}
    stateful = [c for c in channels if weights[c].inference_mode == "stateful"]
    engine = InferenceEngine()
    try:
        first = channels[0]
        engine.predict_series(weights[first], series[first][: stack.model.l_s + 8])  # numba, pool
        engine.predict_series_carried(weights[first], series[first][: stack.model.l_s + 8])
        windowed_s: dict[str, float] = {}
        for channel in channels:
            started = time.perf_counter()
            engine.predict_series(weights[channel], series[channel])
            windowed_s[channel] = time.perf_counter() - started
        carried_s: dict[str, float] = {}
        for channel in stateful:
            started = time.perf_counter()
            guarded_series(engine, weights[channel], series[channel])
            carried_s[channel] = time.perf_counter() - started
    finally:
        engine.close()
    points = {c: len(series[c]) - stack.model.l_s for c in channels}
    hybrid_s = sum(carried_s.get(c, windowed_s[c]) for c in channels)
    total = sum(points.values())
    stateful_points = sum(points[c] for c in stateful)

    def per_point(seconds: float, count: int) -> float | None:
        return round(1e6 * seconds / count, 2) if count else None

    return {
        "points": total,
        "stateful_channels": stateful,
        "windowed": {"seconds": round(sum(windowed_s.values()), 2),
                     "points_per_s": round(total / sum(windowed_s.values()), 1)},
        "hybrid": {"seconds": round(hybrid_s, 2), "points_per_s": round(total / hybrid_s, 1)},
        "us_per_point": {
            "windowed": per_point(sum(windowed_s.values()), total),
            "stateful_with_guard": per_point(sum(carried_s.values()), stateful_points),
            "windowed_on_stateful_channels": per_point(sum(windowed_s[c] for c in stateful), stateful_points),
        },
    }  # fmt: skip


def quantiles(after: Buckets, before: Buckets | None = None) -> dict[str, float | None]:
    def ms(q: float) -> float | None:
        value = bucket_quantile(q, after, before)
        return None if value is None else round(value * 1000, 1)

    observed = after[-1][1] - (before[-1][1] if before else 0.0) if after else 0.0
    return {"p50_ms": ms(0.5), "p99_ms": ms(0.99), "observations": observed}


def backlog(stack: Settings, folder: Path, channels: tuple[str, ...], policy: str) -> dict[str, Any]:
    """Replay first, then one worker (``worker.inference_policy`` = ``policy``) scores the backlog:
    points/s and the scoring wall time."""
    config = Configuration(stack, folder, channels, 1, env={"TMSTREAM_WORKER_INFERENCE_POLICY": policy})
    try:
        config.tmstream("topics", "create")
        config.tmstream("replay", "--channels", ",".join(channels), "--max", timeout=TIMEOUT_S)
        expected = config.expected_points()
        config.start_workers(1)
        first, last = config.wait_scored(expected, TIMEOUT_S)
        port = config.ports["w1"]
        scoring = metric_sum(port, "tmstream_scoring_seconds_sum")
        batches = metric_sum(port, "tmstream_scoring_seconds_count")
    finally:
        config.close()
    elapsed = max(last - first, 1e-3)
    return {
        "points": expected,
        "seconds": round(elapsed, 2),
        "points_per_s": round(expected / elapsed, 1),
        "engine_seconds_in_worker": round(scoring, 2),
        "engine_share_of_wall": round(scoring / elapsed, 3),
        "batches": int(batches),
    }


def max_rate(stack: Settings, folder: Path, channels: tuple[str, ...]) -> dict[str, Any]:
    """A running worker, the split replayed at full speed: throughput with the producer beside it."""
    with configuration(stack, folder, 1, channels, 1) as config:
        expected = config.expected_points()
        started = time.monotonic()
        config.tmstream("replay", "--channels", ",".join(channels), "--max", timeout=TIMEOUT_S)
        replay_s = time.monotonic() - started
        first, last = config.wait_scored(expected, TIMEOUT_S)
        latency = quantiles(histogram_buckets(config.ports["w1"], LATENCY))
    return {
        "points": expected,
        "replay_s": round(replay_s, 2),
        "points_per_s": round(expected / max(last - first, 1e-3), 1),
        **latency,
    }


def steady_rate(stack: Settings, folder: Path, channels: tuple[str, ...]) -> dict[str, Any]:
    """``replay --rate RATE`` into a running worker; latency quantiles over ``STEADY_S`` seconds."""
    with configuration(stack, folder, 1, channels, 1) as config:
        port = config.ports["w1"]
        replay = config.replay("--channels", ",".join(channels), "--rate", str(RATE))
        try:
            time.sleep(stack.model.l_s / RATE + WARMUP_S)
            before, scored_before = histogram_buckets(port, LATENCY), config.scored()
            work_before = [metric_sum(port, name) for name in WORK]
            load_before = load_average()
            time.sleep(STEADY_S)
            after, scored_after = histogram_buckets(port, LATENCY), config.scored()
            busy, windows, batches = (metric_sum(port, n) - b for n, b in zip(WORK, work_before, strict=True))
            lag = metric_sum(port, "tmstream_consumer_lag_messages")
        finally:
            stop(replay)
    offered = len(channels) * RATE
    return {
        "channels": len(channels),
        "rate_per_channel": RATE,
        "offered_points_per_s": offered,
        "scored_points_per_s": round((scored_after - scored_before) / STEADY_S, 1),
        "consumer_lag_at_end": int(lag),
        "scoring_busy_share": round(busy / STEADY_S, 3),
        "windows_per_batch": round(windows / batches, 1) if batches else None,
        "measured_s": STEADY_S,
        "load_average_at_start": load_before,
        **quantiles(after, before),
    }


def run() -> dict[str, Any]:
    with testing_stack() as stack:
        return measure(stack)


def measure(stack: Settings) -> dict[str, Any]:
    channels = channels_from("TMSTREAM_BENCH_CHANNELS", ",".join(DEMO_CHANNELS), stack)
    rate_channels = channels_from("TMSTREAM_BENCH_RATE_CHANNELS", "all", stack)
    import_models(sorted(set(channels) | set(rate_channels)))
    folder = Path(stack.state_dir) / "bench-pipeline"
    folder.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "channels": list(channels),
        "cpus": os.cpu_count(),
        "load_average": load_average(),
    }
    engine_before = engine_alone(stack, channels)
    pipelines = {policy: backlog(stack, folder, channels, policy) for policy in POLICIES}
    engine_after = engine_alone(stack, channels)
    results["load_average_after_overhead"] = load_average()
    overheads = {}
    for policy in POLICIES:
        engine_rate = (engine_before[policy]["points_per_s"] + engine_after[policy]["points_per_s"]) / 2
        overheads[policy] = round(engine_rate / pipelines[policy]["points_per_s"] - 1, 3)
    results.update(
        engine_before=engine_before,
        engine_after=engine_after,
        pipeline_backlog=pipelines,
        pipeline_overhead=overheads,
        meets_overhead_target={policy: value <= TARGET_OVERHEAD for policy, value in overheads.items()},
        hybrid_speedup_over_windowed=round(
            pipelines["hybrid"]["points_per_s"] / pipelines["windowed"]["points_per_s"], 2
        ),
    )
    results["max_rate"] = max_rate(stack, folder, channels)
    results["steady_rate"] = steady = steady_rate(stack, folder, rate_channels)
    p99 = steady["p99_ms"]
    results["meets_p99_target"] = p99 is not None and p99 <= TARGET_P99_S * 1000
    results["load_average_end"] = load_average()
    return results
