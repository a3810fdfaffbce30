"""Every benchmark module is importable and exposes ``run``; the histogram quantile is Prometheus'."""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import pytest

from benchmarks._harness import bucket_quantile

BENCHMARKS = sorted(
    p.stem for p in (Path(__file__).parents[3] / "benchmarks").glob("*.py") if not p.stem.startswith("_")
)
INF = math.inf


def test_the_expected_benchmarks_exist() -> None:
    assert {"engine", "producer", "pipeline", "memory", "scale", "scaleout"} <= set(BENCHMARKS)


@pytest.mark.parametrize("name", BENCHMARKS)
def test_each_benchmark_exposes_run(name: str) -> None:
    module = importlib.import_module(f"benchmarks.{name}")
    assert callable(module.run)


def test_quantile_interpolates_inside_the_bucket_holding_the_rank() -> None:
    # 10 observations: 2 in (0, 0.1], 6 in (0.1, 0.2], 2 in (0.2, 0.5]
    buckets = [(0.1, 2.0), (0.2, 8.0), (0.5, 10.0), (INF, 10.0)]
    assert bucket_quantile(0.5, buckets) == pytest.approx(0.1 + 0.1 * (5 - 2) / 6)
    assert bucket_quantile(0.1, buckets) == pytest.approx(0.05)
    assert bucket_quantile(0.99, buckets) == pytest.approx(0.2 + 0.3 * (9.9 - 8) / 2)
    assert bucket_quantile(1.0, buckets) == pytest.approx(0.5)


def test_quantile_uses_only_the_observations_between_two_scrapes() -> None:
    before = [(0.1, 100.0), (0.2, 100.0), (0.5, 100.0), (INF, 100.0)]
    after = [(0.1, 100.0), (0.2, 104.0), (0.5, 104.0), (INF, 104.0)]
    assert bucket_quantile(0.5, after, before) == pytest.approx(0.15)


def test_a_rank_in_the_inf_bucket_gives_the_highest_finite_bound() -> None:
    buckets = [(0.1, 1.0), (0.25, 1.0), (INF, 10.0)]
    assert bucket_quantile(0.99, buckets) == pytest.approx(0.25)


def test_no_observations_give_no_quantile() -> None:
    same = [(0.1, 3.0), (INF, 3.0)]
    assert bucket_quantile(0.5, same, same) is None
    assert bucket_quantile(0.5, []) is None
