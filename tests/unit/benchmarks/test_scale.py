"""The scale benchmark's fleet parsing, phase lengths and registry copy (no stack needed)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from benchmarks import scale
from model_store.registry import model_name


def test_fleets_are_channels_by_rate() -> None:
    assert scale.fleets_from(scale.DEFAULT_FLEETS) == [(82, 10.0), (1000, 1.0), (10000, 0.1)]


def test_phases_hold_ten_rounds_of_every_channel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TMSTREAM_BENCH_SCALE_STEADY_S", raising=False)
    monkeypatch.delenv("TMSTREAM_BENCH_SCALE_WARMUP_S", raising=False)
    assert scale.phases(10.0) == (20.0, 60.0)
    assert scale.phases(0.1) == (20.0, pytest.approx(100.0))
    monkeypatch.setenv("TMSTREAM_BENCH_SCALE_STEADY_S", "5")
    assert scale.phases(0.1)[1] == 5.0


def test_each_channel_gets_the_rows_of_reference_model_i_mod_n(tmp_path: Path) -> None:
    reference = tmp_path / "reference.db"
    with sqlite3.connect(reference) as db:
        for table in scale.REGISTRY_TABLES:
            db.execute(f"CREATE TABLE {table} (name TEXT, key TEXT, value TEXT)")
        for source in ("A-1", "A-2"):
            for table in scale.REGISTRY_TABLES:
                db.execute(
                    f"INSERT INTO {table} VALUES (?, 'inference_mode', ?)", (model_name(source), source)
                )
    target = tmp_path / "fleet.db"
    scale.fleet_registry(reference, ["A-1", "A-2"], target, ["Z-1", "Z-2", "Z-3"])
    with sqlite3.connect(target) as db:
        for table in scale.REGISTRY_TABLES:
            rows = dict(db.execute(f"SELECT name, value FROM {table}").fetchall())
            assert rows[model_name("Z-1")] == "A-1"
            assert rows[model_name("Z-2")] == "A-2"
            assert rows[model_name("Z-3")] == "A-1"
            assert rows[model_name("A-1")] == "A-1"  # the reference rows stay
