"""Compile the engine's numba kernels into their on-disk cache before any worker runs.

``python -m model_store.warm`` (``scripts/install.sh``, the image build): numba compiles a kernel on
its first call and caches it (``cache=True``, under ``model_store/__pycache__`` or
``NUMBA_CACHE_DIR``), and a fresh install's first compile takes ≈40 s (docs/PERFORMANCE.md,
"Engine"), which a worker would otherwise pay on its first batch. Tiny weights of each recurrent
activation take every path of the engine (the windows-first loop, the transposed loop, windows
mode, the carried state), so the worker only loads the cache (≈0.5 s, on its warm-up thread).
Run it with the same ``NUMBA_CACHE_DIR`` as the worker (unset: the tree's ``__pycache__``) and on
the same kind of CPU: numba keys its cache by CPU, and another one compiles again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import NoReturn

import numpy as np
from numba.core.dispatcher import Dispatcher

from model_store import engine as engine_module
from model_store.engine import NARROW_WINDOWS, InferenceEngine
from model_store.weights import RECURRENT_ACTIVATIONS, LstmLayer, LstmWeights, RecurrentActivation

FEATURES, UNITS, L_S = 3, 4, 4
AFRESH = "TMSTREAM_WARM_AFRESH"  # set in the process that compiles afresh


def tiny_weights(activation: RecurrentActivation) -> LstmWeights:
    """Two small LSTM layers and a Dense: the reference models' kinds of arrays, not their sizes
    (numba compiles per array type, not per shape)."""
    rng = np.random.default_rng(0)

    def layer(inputs: int) -> LstmLayer:
        return LstmLayer(
            rng.normal(0, 0.1, (inputs, 4 * UNITS)).astype(np.float32),
            rng.normal(0, 0.1, (UNITS, 4 * UNITS)).astype(np.float32),
            np.zeros(4 * UNITS, np.float32),
        )

    dense = rng.normal(0, 0.1, (UNITS, 2)).astype(np.float32)
    return LstmWeights(
        f"warm-{activation}", (layer(FEATURES), layer(UNITS)), dense, np.zeros(2, np.float32), activation, L_S
    )


def warm() -> list[Dispatcher]:
    """Run every engine path once per recurrent activation; the engine's disk-cached kernels."""
    engine = InferenceEngine()
    try:
        for activation in RECURRENT_ACTIVATIONS:
            weights = tiny_weights(activation)
            for width in (1, NARROW_WINDOWS + 1):  # the windows-first loop, then the transposed one
                rows = np.zeros((L_S + width, FEATURES), np.float32)  # width predicted rows
                engine.predict_series(weights, rows)
            engine.predict_windows(weights, np.zeros((2, L_S, FEATURES), np.float32))
            (carried,) = engine.carry_many([(weights, np.zeros((2, FEATURES), np.float32), None)])
            engine.carry_many([(weights, np.zeros((1, FEATURES), np.float32), carried.carry)])
    finally:
        engine.close()
    return _cached_kernels()


def _cached_kernels() -> list[Dispatcher]:
    """The engine's disk-cached kernels: module-level ones and each activation's set."""
    found = [value for value in vars(engine_module).values() if isinstance(value, Dispatcher)]
    found += [kernel for kernels in engine_module._KERNELS.values() for kernel in kernels]
    return [kernel for kernel in found if kernel.stats.cache_path is not None]


def main() -> None:
    started = time.perf_counter()
    try:
        kernels = warm()
    except RuntimeError as exc:  # numba's "NRT_adapt_ndarray_to_python: 'descr' is NULL"
        _compile_afresh(f"the cached kernels do not load together ({exc})")
    symbols = [
        result.fndesc.mangled_name  # type: ignore[attr-defined]  # numba's CompileResult, untyped
        for kernel in kernels
        for result in kernel.overloads.values()
    ]
    if len(set(symbols)) < len(symbols):
        _compile_afresh("two cached kernels carry the same symbol")
    compiled = sum(len(kernel.stats.cache_misses) for kernel in kernels)
    loaded = sum(len(kernel.stats.cache_hits) for kernel in kernels)
    folders = sorted({str(kernel.stats.cache_path) for kernel in kernels})
    took = time.perf_counter() - started
    print(
        f"engine kernels ready in {took:.1f} s: {compiled} compiled, {loaded} loaded ({', '.join(folders)})"
    )
    # a kernel added to the engine that the paths above do not reach: the worker would compile it
    # (told by a compile only: a kernel that others call is not loaded on its own from the cache)
    missed = sorted(kernel.py_func.__qualname__ for kernel in kernels if not kernel.signatures)
    if compiled and missed:
        print(f"not reached by the warm-up, compiled on first use: {', '.join(missed)}", file=sys.stderr)


def _compile_afresh(why: str) -> NoReturn:
    """Drop the engine's cache and compile it all again in a new process. Why: numba names a
    compiled kernel by its qualified name, its argument types and a per-process counter, and the
    engine's two activations build kernels of the same name and types (``_kernels``), so entries
    written by different processes can carry the same symbol; loaded together they failed
    ("NRT_adapt_ndarray_to_python: 'descr' is NULL"). Kernels compiled in one process never do."""
    if os.environ.get(AFRESH):  # this process is the fresh compile: its failure is the answer
        raise SystemExit(f"the engine's kernels do not compile and load: {why}")
    print(f"{why}: compiling the engine's kernels afresh", file=sys.stderr)
    for folder in {Path(str(kernel.stats.cache_path)) for kernel in _cached_kernels()}:
        for stale in folder.glob(f"{engine_module.__name__.rsplit('.', 1)[-1]}.*.nb[ci]"):
            stale.unlink(missing_ok=True)
    sys.exit(subprocess.call([sys.executable, "-m", "model_store.warm"], env={**os.environ, AFRESH: "1"}))


if __name__ == "__main__":
    main()
