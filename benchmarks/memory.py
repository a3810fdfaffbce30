"""Worker memory with every model cached, model load time, and start → first scored point.

One worker on an isolated run (``benchmarks/_harness.py``) over all channels of the data set, each
replayed *before* the worker starts with only its first ``l_s + POINTS`` test rows, so every channel
is scored (every model loaded) within seconds. Measured:

- the worker's RSS (``/proc``: now and peak) once every point is scored, and the cache's weight bytes;
- model load time: exact, in this process, through the registry the worker reads
  (``reading_registry``: ``resolve`` + ``load`` per channel, the first call reported apart), and
  the worker's ``tmstream_model_load_seconds`` p95 from its buckets;
- process start → first scored point, split by the worker's log into its phases: imports
  (interpreter start → the worker's "initialising" line), the app build (→ Faust's worker
  starting: Faust's lazily imported modules, the app, topic preparation), Faust's services (→ its
  conductor waiting for the subscription), the broker join (→ Faust's "Executing
  _on_partitions_assigned"; aiokafka's own lines are held back below DEBUG), Faust's seek to the
  committed offsets and the worker's assignment handler (reading the state topic and the emitted
  keys), then → first scored point (fetch, first windows, model loads, scoring).
  The start time without the broker join is the total less the join.

Targets: RSS ≤ 400 MiB, load p95 ≤ 500 ms, first scored point ≤ 2 s without the join.
"""

from __future__ import annotations

import os
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._harness import (
    Configuration,
    bucket_quantile,
    histogram_buckets,
    import_models,
    load_average,
    rss_bytes,
    testing_stack,
    truncated_split,
    wait_for,
)
from tmstream.ground.settings import Settings

POINTS = 20
TIMEOUT_S = 300.0
TARGET_RSS_BYTES = 400 * 2**20
TARGET_LOAD_P95_S = 0.5
TARGET_FIRST_SCORED_S = 2.0
# Faust's "[stamp] …" or, before Faust configures logging, the CLI's "stamp …"
_STAMP = re.compile(r"^\[?(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]?")


def registry_load_times(stack: Settings, channels: tuple[str, ...]) -> dict[str, float]:
    """Resolve + load of each channel's champion from a fresh registry reader, in seconds."""
    from model_store.registry_readers import reading_registry

    registry = reading_registry(stack)
    started = time.perf_counter()
    registry.load(registry.resolve(channels[0]))
    first = time.perf_counter() - started
    times = []
    for channel in channels:
        registry._local_paths.clear()  # the worker's cache misses resolve the artifact path again
        started = time.perf_counter()
        registry.load(registry.resolve(channel))
        times.append(time.perf_counter() - started)
    return {
        "first_call_s": round(first, 3),
        "p50_ms": round(float(np.percentile(times, 50)) * 1000, 1),
        "p95_ms": round(float(np.percentile(times, 95)) * 1000, 1),
        "max_ms": round(max(times) * 1000, 1),
    }


def log_time(log: str, marker: str) -> float:
    """Epoch seconds of the first worker log line containing ``marker``."""
    for line in log.splitlines():
        found = _STAMP.match(line)
        if found and marker in line:
            return datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
    raise ValueError(f"no worker log line with {marker!r}")


def worker_run(stack: Settings, folder: Path, channels: tuple[str, ...]) -> dict[str, Any]:
    data = truncated_split(stack.data_dir, folder / "data", stack.model.l_s + POINTS, channels)
    config = Configuration(stack, folder, channels, 1, data_dir=data)
    try:
        config.tmstream("topics", "create")
        config.tmstream("replay", "--max")
        expected = config.expected_points()
        config.start_worker("w1")
        port = config.ports["w1"]

        def scored_any() -> bool:
            try:
                return config.scored() > 0
            except OSError:
                return False

        wait_for(scored_any, TIMEOUT_S, "a first scored point", every=0.05)
        first_scored_at = time.time()
        wait_for(lambda: config.scored() >= expected, TIMEOUT_S, f"{expected} points scored")
        memory = rss_bytes(config.processes["w1"].pid)
        cached = config.models("w1")
        worker_p95 = bucket_quantile(0.95, histogram_buckets(port, "tmstream_model_load_seconds"))
        log = config.log("w1")
    finally:
        config.close()
    started = config.started["w1"]
    initialising = log_time(log, ": initialising")
    faust_start = log_time(log, "[^Worker]: Starting")
    subscribed = log_time(log, "Waiting for tables to be registered")
    joined = log_time(log, "Executing _on_partitions_assigned")
    handled = log_time(log, "] assigned ")
    join = joined - subscribed
    first_scored = first_scored_at - started
    return {
        "channels": len(channels),
        "points_scored": expected,
        "models_cached": len(cached["models"]),
        "cache_weight_bytes": cached["bytes"],
        **memory,
        "rss_mib": round(memory["rss_bytes"] / 2**20, 1),
        "start_to_first_scored_s": round(first_scored, 2),
        "broker_join_s": round(join, 2),
        "start_to_first_scored_without_join_s": round(first_scored - join, 2),
        "process_start_to_faust_start_s": round(faust_start - started, 2),
        "imports_s": round(initialising - started, 2),
        "app_build_s": round(faust_start - initialising, 2),
        "faust_start_to_subscribed_s": round(subscribed - faust_start, 2),
        "assignment_handler_s": round(handled - joined, 2),
        "assigned_to_first_scored_s": round(first_scored_at - handled, 2),
        "worker_model_load_p95_ms": None if worker_p95 is None else round(worker_p95 * 1000, 1),
    }


def run() -> dict[str, Any]:
    with testing_stack() as stack:
        return measure(stack)


def measure(stack: Settings) -> dict[str, Any]:
    channels = tuple(sorted(p.stem for p in (stack.data_dir / "test").glob("*.npy")))
    import_models(channels)
    folder = Path(stack.state_dir) / "bench-memory"
    folder.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"cpus": os.cpu_count(), "load_average": load_average()}
    results["model_load"] = loads = registry_load_times(stack, channels)
    results["worker"] = worker = worker_run(stack, folder, channels)
    results["meets_rss_target"] = worker["rss_bytes"] <= TARGET_RSS_BYTES
    results["meets_load_p95_target"] = loads["p95_ms"] <= TARGET_LOAD_P95_S * 1000
    results["meets_first_scored_target"] = (
        worker["start_to_first_scored_without_join_s"] <= TARGET_FIRST_SCORED_S
    )
    results["load_average_end"] = load_average()
    return results
