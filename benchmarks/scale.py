"""Fleets of synthetic channels through the real pipeline: throughput, latency and RSS vs channel count.

Per fleet size N (``TMSTREAM_BENCH_SCALE_COUNTS``, default ``82,1000,10000``): a synthetic data set
(``producers.synth``, SMAP width, ``L_S + BURST`` test rows per channel, so each channel sends a
short burst of ``BURST`` scored points after its first window), its own MLflow registry in which one
small random-weight model (two layers of ``UNITS`` units, SMAP width, ``L_S``-row windows: the
worker runs with ``model.l_s`` = ``L_S``, so 10,000 channels are 800,000 records, not 2.8 million)
is registered through the
API for the first channel and its registry rows are copied in SQL for the others (MLflow's API costs
tens of milliseconds per registration: minutes for 10,000 channels), and one worker with the
default bounded model cache (``model.cache_max_models``), so a fleet beyond it evicts and reloads.

All channels share one topic of ``PARTITIONS`` partitions, keyed by channel (a registry ``topic``
entry): the broker holds one topic whatever N is, so the curve is the worker's, not the broker's
topic count. The worker runs first; the burst is replayed at full speed into it. Measured: points
scored per second (first scored to last), event → scored p50/p99 from the worker's histogram,
worker RSS (now and peak), model cache loads and evictions. A fleet that does not finish within
``TIMEOUT_S`` reports what it scored by then (``completed: false``).
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._harness import (
    bucket_quantile,
    configuration,
    histogram_buckets,
    load_average,
    metric_sum,
    rss_bytes,
    stop,
    testing_stack,
)
from model_store.weights import LstmLayer, LstmWeights
from producers.synth import SynthSpec, write_synthetic
from tmstream.ground.settings import Settings

BURST = 30
L_S = 50
UNITS = 16
FEATURES = 25
PARTITIONS = 6
TIMEOUT_S = 600.0
SCRAPE_TIMEOUT_S = 60.0
LATENCY = "tmstream_event_to_scored_seconds"
REGISTRY_TABLES = (
    "registered_models",
    "registered_model_tags",
    "registered_model_aliases",
    "model_versions",
    "model_version_tags",
)


def small_model(channel: str, l_s: int) -> LstmWeights:
    """Random weights of the reference input shape; accuracy is not what this benchmark measures."""
    rng = np.random.default_rng(0)

    def layer(inputs: int) -> LstmLayer:
        return LstmLayer(
            rng.normal(0, 0.1, (inputs, 4 * UNITS)).astype(np.float32),
            rng.normal(0, 0.1, (UNITS, 4 * UNITS)).astype(np.float32),
            np.zeros(4 * UNITS, np.float32),
        )

    return LstmWeights(
        channel,
        (layer(FEATURES), layer(UNITS)),
        rng.normal(0, 0.1, (UNITS, 10)).astype(np.float32),
        np.zeros(10, np.float32),
        "sigmoid",
        l_s,
        source="bench-scale",
    )


def register_fleet(stack: Settings, uri: str, channels: list[str]) -> None:
    """One model registered through MLflow for ``channels[0]``, its rows copied for the others."""
    from model_store.registry import ModelRegistry, model_name

    settings = stack.model_copy(update={"mlflow": stack.mlflow.model_copy(update={"tracking_uri": uri})})
    ModelRegistry(settings).register_weights(small_model(channels[0], stack.model.l_s), aliases=["champion"])
    source = model_name(channels[0])
    with sqlite3.connect(uri.removeprefix("sqlite:///")) as db:
        for table in REGISTRY_TABLES:
            columns = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
            picked = ", ".join("?" if c == "name" else c for c in columns)
            rows = [(model_name(c),) for c in channels[1:]]
            copy = f"INSERT INTO {table} ({', '.join(columns)}) SELECT {picked} FROM {table} WHERE name = ?"
            db.executemany(copy, [(*row, source) for row in rows])


def fleet(stack: Settings, folder: Path, count: int) -> dict[str, Any]:
    base = folder / f"n{count}-{time.time_ns()}"
    stack = stack.model_copy(update={"model": stack.model.model_copy(update={"l_s": L_S})})
    spec = SynthSpec(channels=count, train_rows=8, test_rows=L_S + BURST, features=FEATURES,
                     anomalies_per_channel=1)  # fmt: skip
    started = time.monotonic()
    channels = write_synthetic(base / "data", spec)
    uri = f"sqlite:///{base / 'mlflow.db'}"
    register_fleet(stack, uri, channels)
    prepared_s = time.monotonic() - started
    options: dict[str, Any] = {
        "data_dir": base / "data",
        "shared_topic": True,
        "env": {"TMSTREAM_MLFLOW_TRACKING_URI": uri, "TMSTREAM_MODEL_L_S": str(L_S)},
    }
    with configuration(stack, base, 1, tuple(channels), PARTITIONS, **options) as config:
        port = config.ports["w1"]
        idle = rss_bytes(config.processes["w1"].pid)["rss_bytes"]
        expected = config.expected_points()
        replay = config.replay("--max")
        # each scrape renders every channel's series: at 10,000 channels a 0.5 s poll would be
        # the worker's main load, so poll in proportion to the fleet
        poll = max(0.5, count / 2000)
        first: float | None = None
        begun = time.monotonic()
        scored = 0
        try:
            while time.monotonic() - begun < TIMEOUT_S and scored < expected:
                time.sleep(poll)
                scored = config.scored(SCRAPE_TIMEOUT_S)
                if first is None and scored:
                    first = time.monotonic()
            last = time.monotonic()
            replay_done = replay.poll() is not None
        finally:  # a failed fleet must not leave its replay running into the next one
            stop(replay)
        memory = rss_bytes(config.processes["w1"].pid)
        buckets = histogram_buckets(port, LATENCY, SCRAPE_TIMEOUT_S)
        cache = {
            name: int(metric_sum(port, f"tmstream_model_cache_{name}_total", SCRAPE_TIMEOUT_S))
            for name in ("loads", "evictions", "hits", "misses")
        }
        cached = int(metric_sum(port, "tmstream_model_cache_models", SCRAPE_TIMEOUT_S))
    elapsed = max(last - (first or last), 1e-3)
    p50, p99 = bucket_quantile(0.5, buckets), bucket_quantile(0.99, buckets)
    return {
        "channels": count,
        "points_expected": expected,
        "points_scored": scored,
        "completed": scored >= expected,
        "replay_finished": replay_done,
        "prepare_s": round(prepared_s, 1),
        "scoring_s": round(elapsed, 1),
        "points_per_s": round(scored / elapsed, 1),
        "p50_ms": None if p50 is None else round(p50 * 1000, 1),
        "p99_ms": None if p99 is None else round(p99 * 1000, 1),
        "idle_rss_bytes": idle,
        **memory,
        "models_cached": cached,
        "cache": cache,
        "load_average": load_average(),
    }


def run() -> dict[str, Any]:
    with testing_stack() as stack:
        return measure(stack)


def measure(stack: Settings) -> dict[str, Any]:
    counts = [int(n) for n in os.environ.get("TMSTREAM_BENCH_SCALE_COUNTS", "82,1000,10000").split(",")]
    folder = Path(stack.state_dir) / "bench-scale"
    folder.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "burst_points_per_channel": BURST,
        "units": [UNITS, UNITS],
        "l_s": L_S,
        "cache_max_models": stack.model.cache_max_models,
        "load_average": load_average(),
    }
    fleets = [fleet(stack, folder, count) for count in counts]
    results["fleets"] = fleets
    for small, large in itertools.pairwise(fleets):
        key = f"marginal_rss_bytes_per_channel_{small['channels']}_to_{large['channels']}"
        results[key] = round(
            (large["rss_bytes"] - small["rss_bytes"]) / (large["channels"] - small["channels"])
        )
    return results
