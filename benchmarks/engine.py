"""Engine throughput vs Keras ``predict`` on the same weights and windows (SMAP reference P-1).

Also measures what this machine's BLAS does on the engine's GEMM shapes, so the engine's speed
reads as a fraction of the float32 roofline it can reach, not an absolute number.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

CHANNEL = "P-1"
WINDOWS = 4096


def _best_rate(count: int, call: Any, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    return count / best


def gemm_roofline(batch: int = 256, units: int = 80, repeats: int = 400) -> float:
    """GFLOP/s of the step GEMMs (B x 80 by 80 x 320 and B x 160 by 160 x 320), one thread per core."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    threads = os.cpu_count() or 1
    rng = np.random.default_rng(0)
    first = rng.standard_normal((units, 4 * units), dtype=np.float32)
    second = rng.standard_normal((2 * units, 4 * units), dtype=np.float32)

    def work(_: int) -> None:
        state = rng.standard_normal((batch, 2 * units), dtype=np.float32)
        out = np.empty((batch, 4 * units), np.float32)
        for _ in range(repeats):
            np.matmul(state[:, :units], first, out=out)
            np.matmul(state, second, out=out)

    flops = threads * repeats * 2 * batch * (3 * units) * 4 * units
    with threadpool_limits(1, "blas"), ThreadPoolExecutor(threads) as pool:
        rate = _best_rate(flops, lambda: list(pool.map(work, range(threads))))
    return rate / 1e9


def run() -> dict[str, Any]:
    from model_store.engine import InferenceEngine
    from model_store.keras2_h5 import read_keras2_h5
    from model_store.keras_model import from_lstm_weights
    from producers.dataset import TelemanomDataset
    from tmstream.ground.settings import load_settings

    settings = load_settings()
    weights = read_keras2_h5(settings.data_dir / "reference-2018" / "models" / f"{CHANNEL}.h5", CHANNEL)
    rows = TelemanomDataset(settings.data_dir).load(CHANNEL, "test")
    reference = np.load(settings.data_dir / "reference-2018" / "y_hat" / f"{CHANNEL}.npy")
    count = min(WINDOWS, len(rows) - weights.l_s)
    series = rows[: count + weights.l_s]
    windows = np.lib.stride_tricks.sliding_window_view(series, weights.l_s, axis=0)[:count]
    windows = np.ascontiguousarray(np.moveaxis(windows, -1, 1), dtype=np.float32)

    engine = InferenceEngine()
    engine.predict_windows(weights, windows[:8])
    series_rate = _best_rate(count, lambda: engine.predict_series(weights, series))
    windows_rate = _best_rate(count, lambda: engine.predict_windows(weights, windows))
    full = engine.predict_series(weights, rows)[: len(reference)]
    engine.close()

    model = from_lstm_weights(weights, settings.model)
    model.predict(windows[:64], batch_size=64, verbose=0)
    keras_rate = _best_rate(count, lambda: model.predict(windows, batch_size=512, verbose=0), repeats=1)
    keras_error = float(
        np.abs(model.predict(windows, batch_size=512, verbose=0)[:, 0] - reference[:count]).max()
    )

    recurrent = sum(
        2 * (0 if number == 0 else layer.kernel.shape[0]) * 4 * layer.units
        + 2 * layer.units * 4 * layer.units
        for number, layer in enumerate(weights.layers)
    )
    # series mode: the recurrent GEMMs every step, the input projection once per row
    flops_per_window = weights.l_s * recurrent + 2 * weights.n_features * 4 * weights.units[0]
    roofline = gemm_roofline()
    return {
        "channel": CHANNEL,
        "windows": count,
        "threads": os.cpu_count(),
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "engine_series_windows_per_s": round(series_rate, 1),
        "engine_windows_windows_per_s": round(windows_rate, 1),
        "keras_predict_windows_per_s": round(keras_rate, 1),
        "speedup_vs_keras": round(series_rate / keras_rate, 2),
        "gemm_roofline_gflops": round(roofline, 1),
        "engine_gflops": round(series_rate * flops_per_window / 1e9, 1),
        "roofline_fraction": round(series_rate * flops_per_window / 1e9 / roofline, 3),
        "max_abs_error_engine_vs_2018": float(np.abs(full - reference).max()),
        "max_abs_error_keras_vs_2018": keras_error,
    }
