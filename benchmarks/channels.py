"""The worker's micro-batch shape: many channels, a few new windows each, scored by the engine.

Every channel of the data set (82 reference models: SMAP 25 and MSL 55 features, one architecture
each) gets ``l_s + k`` rows of its test split; one micro-batch is then scored two ways in the same
process: one ``predict_series`` call per channel (the worker before ``predict_series_many``), and
one ``predict_series_many`` call (the worker now), and that call again with the windows-first
loop for short segments turned off (``narrow_windows=0``: every segment through BLAS, the engine
before it). Shapes: k = 1, 2 and 6 for every channel (a steady stream's micro-batches; 6 in the
steady-rate run of ``bench pipeline``), k drawn from 10..50, and k = 200. No stack needed.
"""

from __future__ import annotations

import os
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmarks._harness import best_seconds

if TYPE_CHECKING:
    from model_store.engine import InferenceEngine
    from model_store.weights import LstmWeights

SHAPES: dict[str, tuple[int, int]] = {
    "k=1": (1, 1),
    "k=2": (2, 2),
    "k=6": (6, 6),
    "k=10..50": (10, 50),
    "k=200": (200, 200),
}


def _per_channel(engine: InferenceEngine, items: list[tuple[LstmWeights, np.ndarray]]) -> list[np.ndarray]:
    return [engine.predict_series(weights, rows) for weights, rows in items]


def run() -> dict[str, Any]:
    from model_store.engine import InferenceEngine
    from model_store.keras2_h5 import read_keras2_h5
    from producers.dataset import TelemanomDataset
    from tmstream.ground.settings import load_settings

    settings = load_settings()
    dataset = TelemanomDataset(settings.data_dir)
    channels = sorted(dataset.channels)
    models = settings.data_dir / "reference-2018" / "models"
    weights = {c: read_keras2_h5(models / f"{c}.h5", c) for c in channels}
    tests = {c: dataset.load(c, "test") for c in channels}
    rng = np.random.default_rng(0)
    engine = InferenceEngine()
    blas = InferenceEngine(narrow_windows=0)
    results: dict[str, Any] = {
        "channels": len(channels),
        "threads": engine.threads,
        "cpus": os.cpu_count(),
        "load_average": [round(value, 2) for value in os.getloadavg()],
    }
    try:
        for name, (low, high) in SHAPES.items():
            items = [
                (weights[c], tests[c][: weights[c].l_s + int(rng.integers(low, high + 1))]) for c in channels
            ]
            windows = sum(len(rows) - w.l_s for w, rows in items)
            engine.predict_series_many(items[:2])  # numba compile / cache load, pool start
            engine.predict_series(*items[0])
            per_channel = best_seconds(partial(_per_channel, engine, items))
            many = best_seconds(partial(engine.predict_series_many, items))
            blas.predict_series_many(items[:2])
            blas_only = best_seconds(partial(blas.predict_series_many, items))
            single = [engine.predict_series(w, r) for w, r in items]
            error = max(
                float(np.abs(a - b).max())
                for a, b in zip(single, engine.predict_series_many(items), strict=True)
            )
            results[name] = {
                "windows": windows,
                "per_channel_calls_ms": round(per_channel * 1000, 1),
                "per_channel_windows_per_s": round(windows / per_channel, 1),
                "one_many_call_ms": round(many * 1000, 1),
                "many_windows_per_s": round(windows / many, 1),
                "speedup": round(per_channel / many, 2),
                "blas_only_many_call_ms": round(blas_only * 1000, 1),
                "narrow_speedup": round(blas_only / many, 2),
                "max_abs_difference": error,
                "max_abs_difference_blas_only": max(
                    float(np.abs(a - b).max())
                    for a, b in zip(single, blas.predict_series_many(items), strict=True)
                ),
            }
    finally:
        engine.close()
        blas.close()
    results["load_average_end"] = [round(value, 2) for value in os.getloadavg()]
    return results
