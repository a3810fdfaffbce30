"""The install-time warm-up reaches every disk-cached kernel of the engine, so a worker never
compiles on its first batch (a kernel added to the engine must be added to the warm-up too)."""

from __future__ import annotations

from model_store.warm import warm


def test_the_warm_up_compiles_every_cached_engine_kernel() -> None:
    kernels = warm()
    names = {kernel.py_func.__qualname__ for kernel in kernels}
    assert {"_rows_dot", "_kernels.<locals>._forward", "_kernels.<locals>._forward_narrow"} <= names
    assert [kernel.py_func.__qualname__ for kernel in kernels if not kernel.signatures] == []
