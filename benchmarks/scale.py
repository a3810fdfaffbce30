"""Fleets of channels on real NASA-shaped models at a steady rate: does one worker keep up, and how fast.

Per fleet ``NxR`` (``TMSTREAM_BENCH_SCALE_FLEETS``, default ``82x10,1000x1,10000x0.1``: N channels at
R points/s each):

- **Models.** The SMAP reference models (2018 ``.h5``, 25 features, 2 x 80 units, ``l_s`` 250; 54
  channels: ``labeled_anomalies.csv`` has 55 SMAP rows, P-2 twice) are imported once per run into
  the benchmark's own MLflow registry, each measured on its train split
  (``import_reference(..., train_rows=...)``), so every version carries its inference-mode verdict
  as in the real fleet (about 70 % ``stateful``). Each fleet's registry is a copy of that one in
  which synthetic channel ``Z-i`` gets the registry rows of reference model ``(i - 1) mod 54``,
  copied in SQL with their version tags (``inference_mode``, ``stateful_max_error``, ``mode_rows``,
  ``mode_tolerance``, ``weights_uri``...): MLflow's API costs tens of milliseconds per registration,
  minutes for 10,000 channels. The worker runs with the real ``model.l_s`` (250), the ``hybrid``
  policy (the default) and a model cache sized to hold every channel's model
  (``TMSTREAM_MODEL_CACHE_MAX_MODELS``/``_MAX_BYTES``): a steady stream over a cache smaller than the
  fleet reloads every model every round.
- **Data.** ``producers.synth`` (SMAP width), ``l_s + 1`` rows per channel for the first window plus
  the rows the steady phase needs; all channels on one topic of ``PARTITIONS`` partitions keyed by
  channel (a registry ``topic`` entry), one worker, so the curve is the worker's, not the broker's
  topic count.
- **First window.** ``replay --max --until-index l_s + 1`` sends each channel's first 250 rows and
  its first scored point, then the benchmark waits until the worker has scored one point per
  channel with no consumer lag: every model is loaded and every stateful channel has its carried
  state, start-up costs a steady stream does not pay again (bounded by ``CATCHUP_TIMEOUT_S``).
- **Steady phase.** ``replay --rate R --from-index l_s + 1`` continues every channel at row
  ``l_s + 1`` (where ``--resume`` would start; its tail read timed out at 10,000 channels); after
  ``warmup_s`` the worker's ``/metrics`` is scraped, again ``steady_s`` later, and event → scored
  p50/p99 come from the ``tmstream_event_to_scored_seconds`` bucket deltas (``bucket_quantile``,
  one observation per channel micro-batch), beside scored vs offered points/s, consumer lag at the
  end, scoring busy share (``tmstream_scoring_seconds`` per wall second), RSS, cache loads and
  evictions, mode switches and the load average. ``steady_s`` is ``max(60, 10 / R)``: at least
  10 rounds of every channel (the replay sends every channel's point k at k / R, so a fleet's load
  comes in rounds) and at least 49,000 points in each default fleet, so the 1 % above p99 holds
  hundreds of observations. ``warmup_s`` is ``max(20, 2 / R)``.
- **Profile.** A fleet that misses ``TARGET_P99_S`` (or the offered rate) is profiled after its
  measured period, the replay still running: ``py-spy record --threads`` for ``PROFILE_S`` on the
  worker, summarised as the share of samples per thread and the leading frames of the scoring and
  event-loop threads (raw file kept in the fleet folder).

``TMSTREAM_BENCH_SCALE_STEADY_S`` / ``..._WARMUP_S`` override the phase lengths (for a quick check).
"""

from __future__ import annotations

import itertools
import math
import os
import shutil
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks._harness import (
    Configuration,
    bucket_quantile,
    configuration,
    load_average,
    metric_samples,
    rss_bytes,
    stop,
    testing_stack,
)
from tmstream.ground.exposition import sample_sum
from tmstream.ground.settings import Settings

PARTITIONS = 6
TARGET_P99_S = 1.0
CATCHUP_TIMEOUT_S = 600.0
SLACK_S = 60.0  # rows beyond the phases, so the replay never runs dry while it is measured
PROFILE_S = 30.0
SCRAPE_TIMEOUT_S = 120.0
DEFAULT_FLEETS = "82x10,1000x1,10000x0.1"
LATENCY = "tmstream_event_to_scored_seconds"
REGISTRY_TABLES = (
    "registered_models",
    "registered_model_tags",
    "registered_model_aliases",
    "model_versions",
    "model_version_tags",
)
PY_SPY = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "py-spy"


def fleets_from(raw: str) -> list[tuple[int, float]]:
    """``"82x10,1000x1"`` → ``[(82, 10.0), (1000, 1.0)]``: channels x points/s per channel."""
    found = []
    for item in raw.split(","):
        count, _, rate = item.strip().partition("x")
        found.append((int(count), float(rate)))
    return found


def phases(rate: float) -> tuple[float, float]:
    """(warm-up, measured) seconds of a steady phase at ``rate`` points/s per channel."""
    warmup = float(os.environ.get("TMSTREAM_BENCH_SCALE_WARMUP_S", max(20.0, 2 / rate)))
    steady = float(os.environ.get("TMSTREAM_BENCH_SCALE_STEADY_S", max(60.0, 10 / rate)))
    return warmup, steady


def reference_registry(stack: Settings, folder: Path) -> tuple[Path, list[str], dict[str, Any]]:
    """The SMAP reference models imported into a registry of their own, with mode verdicts.

    Returns the registry's sqlite file, the channels, and what the import measured."""
    from model_store.keras2_h5 import read_keras2_h5
    from model_store.registry import ModelRegistry
    from producers.dataset import TelemanomDataset

    models = stack.data_dir / "reference-2018" / "models"
    dataset = TelemanomDataset(stack.data_dir)
    smap = sorted(info.channel for info in dataset.select(spacecraft="SMAP"))
    path = folder / "reference.db"
    settings = stack.model_copy(
        update={"mlflow": stack.mlflow.model_copy(update={"tracking_uri": f"sqlite:///{path}"})}
    )
    started = time.monotonic()
    registry = ModelRegistry(settings)
    registry.import_reference(models, smap, train_rows=lambda name: dataset.load(name, split="train"))
    imported_s = time.monotonic() - started
    modes = Counter(registry.resolve(c, "champion").tags.get("inference_mode", "unmeasured") for c in smap)
    nbytes = max(read_keras2_h5(models / f"{c}.h5", channel=c).nbytes for c in smap)
    return path, smap, {
        "models": len(smap), "modes": dict(modes), "import_s": round(imported_s, 1), "model_bytes": nbytes,
    }  # fmt: skip


def fleet_registry(reference: Path, sources: list[str], target: Path, channels: list[str]) -> None:
    """A copy of the reference registry in which ``channels[i]`` has ``sources[i % len]``'s rows."""
    from model_store.registry import model_name

    shutil.copy(reference, target)
    with sqlite3.connect(target) as db:
        for table in REGISTRY_TABLES:
            columns = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
            picked = ", ".join("?" if c == "name" else c for c in columns)
            copy = f"INSERT INTO {table} ({', '.join(columns)}) SELECT {picked} FROM {table} WHERE name = ?"
            rows = [(model_name(c), model_name(sources[i % len(sources)])) for i, c in enumerate(channels)]
            db.executemany(copy, rows)


class Scrape:
    """One read of the worker's ``/metrics`` (at 10,000 channels a page of ~100,000 samples, so
    each phase reads it once and takes every figure from that read)."""

    def __init__(self, port: int) -> None:
        self.at = time.monotonic()
        self.samples = metric_samples(port, SCRAPE_TIMEOUT_S)

    def sum(self, name: str) -> float:
        return sample_sum(self.samples, name)

    def buckets(self, histogram: str) -> list[tuple[float, float]]:
        found = [(float(s.labels["le"]), s.value) for s in self.samples if s.name == f"{histogram}_bucket"]
        return sorted(found)


def cache_figures(scrape: Scrape) -> dict[str, int]:
    figures = {
        name: int(scrape.sum(f"tmstream_model_cache_{name}_total"))
        for name in ("loads", "evictions", "hits", "misses")
    }
    figures["models"] = int(scrape.sum("tmstream_model_cache_models"))
    figures["bytes"] = int(scrape.sum("tmstream_model_cache_bytes"))
    return figures


def catch_up(config: Configuration, count: int, poll: float) -> tuple[bool, float, Scrape]:
    """Wait until one point per channel is scored and no lag is left; (caught up, seconds, last read)."""
    port = config.ports["w1"]
    begun = time.monotonic()
    while True:
        time.sleep(poll)
        scrape = Scrape(port)
        scored = scrape.sum("tmstream_points_scored_total")
        lag = scrape.sum("tmstream_consumer_lag_messages")
        if scored >= count and lag == 0:
            return True, time.monotonic() - begun, scrape
        if time.monotonic() - begun > CATCHUP_TIMEOUT_S:
            return False, time.monotonic() - begun, scrape


def profile(pid: int, out: Path, seconds: float) -> dict[str, Any]:
    """py-spy on the worker: share of samples per thread, leading frames of the busiest threads."""
    raw = out.with_suffix(".txt")
    command = [str(PY_SPY), "record", "--pid", str(pid), "--threads", "-r", "50", "-f", "raw",
               "-d", str(int(seconds)), "-o", str(raw), "--nonblocking"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if result.returncode != 0 or not raw.exists():
        return {"error": (result.stderr or result.stdout)[-500:]}
    threads: Counter[str] = Counter()
    frames: dict[str, Counter[str]] = {}
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        parts = stack.split(";")
        thread, n = parts[0], int(count)
        threads[thread] += n
        # the first frame below the thread's entry points that is the project's own code, and the leaf
        own = [p for p in parts[1:] if any(m in p for m in ("stream_workers", "model_store", "tmstream"))]
        key = f"{own[-1] if own else '-'} <- leaf {parts[-1]}"
        frames.setdefault(thread, Counter())[key] += n
    total = sum(threads.values()) or 1
    return {
        "raw": str(raw),
        "samples": total,
        "threads": {t: round(n / total, 3) for t, n in threads.most_common(6)},
        "top": {
            t: [(frame, round(n / total, 3)) for frame, n in frames[t].most_common(8)]
            for t, _ in threads.most_common(3)
        },
    }


def fleet(stack: Settings, folder: Path, reference: tuple[Path, list[str], dict[str, Any]],
          count: int, rate: float) -> dict[str, Any]:  # fmt: skip
    from producers.synth import SynthSpec, write_synthetic

    database, sources, imported = reference
    l_s = stack.model.l_s
    warmup_s, steady_s = phases(rate)
    base = folder / f"n{count}-{time.time_ns()}"
    rows = l_s + 1 + math.ceil(rate * (warmup_s + steady_s + PROFILE_S + SLACK_S))
    spec = SynthSpec(channels=count, train_rows=8, test_rows=rows, features=25, anomalies_per_channel=1)
    started = time.monotonic()
    channels = write_synthetic(base / "data", spec)
    fleet_registry(database, sources, base / "mlflow.db", channels)
    prepared_s = time.monotonic() - started
    max_models = count + 16
    max_bytes = (count + 16) * imported["model_bytes"]
    env = {
        "TMSTREAM_MLFLOW_TRACKING_URI": f"sqlite:///{base / 'mlflow.db'}",
        "TMSTREAM_MODEL_CACHE_MAX_MODELS": str(max_models),
        "TMSTREAM_MODEL_CACHE_MAX_BYTES": str(max_bytes),
        "TMSTREAM_WORKER_INFERENCE_POLICY": "hybrid",
    }
    result: dict[str, Any] = {
        "channels": count, "rate_per_channel": rate, "offered_points_per_s": round(count * rate, 1),
        "rows_per_channel": rows, "prepare_s": round(prepared_s, 1),
        "cache_max_models": max_models, "cache_max_bytes": max_bytes,
    }  # fmt: skip
    options: dict[str, Any] = {"data_dir": base / "data", "shared_topic": True, "env": env}
    with configuration(stack, base, 1, tuple(channels), PARTITIONS, **options) as config:
        port, pid = config.ports["w1"], config.processes["w1"].pid
        result["idle_rss_bytes"] = rss_bytes(pid)["rss_bytes"]
        poll = max(1.0, count / 2000)  # a scrape renders every channel's series
        begun = time.monotonic()
        first = config.replay("--max", "--until-index", str(l_s + 1))
        try:
            caught, _, scrape = catch_up(config, count, poll)
            first_done = first.poll() is not None
        finally:
            stop(first)
        result["first_window"] = {
            "caught_up": caught, "first_replay_finished": first_done,
            "seconds": round(time.monotonic() - begun, 1),
            "points_scored": int(scrape.sum("tmstream_points_scored_total")),
            "lag": int(scrape.sum("tmstream_consumer_lag_messages")), "cache": cache_figures(scrape),
            **rss_bytes(pid),
        }  # fmt: skip
        # --from-index, not --resume: the first replay stopped every channel before l_s + 1, so both
        # start there, and at 10,000 channels behind a 1.6 million record lag --resume's tail read
        # timed out (2026-12-03: "could not read the tail ... in time") and the steady replay exited
        steady = config.replay("--rate", str(rate), "--from-index", str(l_s + 1))
        try:
            time.sleep(warmup_s)
            before = Scrape(port)
            load_before = load_average()
            time.sleep(max(0.0, steady_s - (time.monotonic() - before.at)))
            after = Scrape(port)
            measured_s = after.at - before.at
            memory = rss_bytes(pid)
            batches = after.sum("tmstream_batch_windows_count") - before.sum("tmstream_batch_windows_count")
            delta = {name: after.sum(name) - before.sum(name) for name in (
                "tmstream_points_scored_total", "tmstream_scoring_seconds_sum",
                "tmstream_batch_windows_sum",
                "tmstream_inference_mode_switches_total",
            )}  # fmt: skip
            latency_after, latency_before = after.buckets(LATENCY), before.buckets(LATENCY)
            p50 = bucket_quantile(0.5, latency_after, latency_before)
            p99 = bucket_quantile(0.99, latency_after, latency_before)
            observed = latency_after[-1][1] - latency_before[-1][1] if latency_after else 0.0
            scored_rate = delta["tmstream_points_scored_total"] / measured_s
            kept_up = (
                scored_rate >= 0.95 * count * rate and after.sum("tmstream_consumer_lag_messages") < count
            )
            met = p99 is not None and p99 <= TARGET_P99_S and kept_up
            result["steady"] = {
                "warmup_s": warmup_s, "measured_s": round(measured_s, 1),
                "scored_points_per_s": round(scored_rate, 1),
                "consumer_lag_at_end": int(after.sum("tmstream_consumer_lag_messages")),
                "scoring_busy_share": round(delta["tmstream_scoring_seconds_sum"] / measured_s, 3),
                "windows_per_batch": round(delta["tmstream_batch_windows_sum"] / max(batches, 1), 1),
                "mode_switches": int(delta["tmstream_inference_mode_switches_total"]),
                "observations": int(observed),
                "p50_ms": None if p50 is None else round(p50 * 1000, 1),
                "p99_ms": None if p99 is None else round(p99 * 1000, 1),
                "cache": cache_figures(after), **memory,
                "load_average_at_start": load_before, "load_average_at_end": load_average(),
            }  # fmt: skip
            result["meets_target"] = met
            if not met:
                result["profile"] = profile(pid, base / "py-spy", PROFILE_S)
            result["steady_replay_finished_early"] = ended = steady.poll() is not None
            if ended:
                log = (config.folder / "replay.log").read_text(errors="replace").strip().splitlines()
                result["steady_replay_exit"] = {"rc": steady.returncode, "last_line": log[-1:] or None}
        finally:
            stop(steady)
    return result


def run() -> dict[str, Any]:
    with testing_stack() as stack:
        return measure(stack)


def measure(stack: Settings) -> dict[str, Any]:
    fleets = fleets_from(os.environ.get("TMSTREAM_BENCH_SCALE_FLEETS", DEFAULT_FLEETS))
    folder = Path(stack.state_dir) / "bench-scale" / f"r{time.time_ns()}"
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results: dict[str, Any] = {"cpus": os.cpu_count(), "l_s": stack.model.l_s, "partitions": PARTITIONS,
                               "target_p99_s": TARGET_P99_S, "load_average": load_average()}  # fmt: skip
    reference = reference_registry(stack, folder)
    results["reference_models"] = reference[2]
    results["fleets"] = [fleet(stack, folder, reference, count, rate) for count, rate in fleets]
    measured = [f for f in results["fleets"] if "steady" in f]
    for small, large in itertools.pairwise(measured):
        key = f"marginal_rss_bytes_per_channel_{small['channels']}_to_{large['channels']}"
        extra = large["channels"] - small["channels"]
        results[key] = round((large["steady"]["rss_bytes"] - small["steady"]["rss_bytes"]) / extra)
    results["wall_s"] = round(time.monotonic() - started, 1)
    results["load_average_end"] = load_average()
    return results
