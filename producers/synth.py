"""Synthetic telemetry in the Telemanom layout, with injected and labelled anomalies.

For demos without the NASA files and for scale tests with thousands of channels. Each channel is
a noisy periodic signal in [-1, 1] with command one-hots that shift it; anomalies are point
spikes or contextual changes (a frequency or level change) placed in the test split only.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class SynthSpec:
    channels: int = 8
    train_rows: int = 2000
    test_rows: int = 3000
    features: int = 25
    anomalies_per_channel: int = 2
    seed: int = 7


def _signal(rng: np.random.Generator, rows: int, features: int, phase: float) -> np.ndarray:
    t = np.arange(rows, dtype=np.float64)
    period = rng.uniform(80, 240)
    values = 0.6 * np.sin(2 * np.pi * t / period + phase) + rng.normal(0, 0.03, rows)
    commands = np.zeros((rows, features - 1))
    if features > 1:
        for start in rng.choice(rows, size=max(1, rows // 400), replace=False):
            column = rng.integers(0, features - 1)
            commands[start : start + 20, column] = 1.0
            values[start : start + 20] += 0.2
    return np.column_stack([np.clip(values, -1, 1), commands])


def _inject(rng: np.random.Generator, test: np.ndarray, count: int) -> list[tuple[int, int, str]]:
    rows = len(test)
    slots = np.linspace(rows * 0.3, rows * 0.95, count + 1).astype(int)
    labels = []
    for i in range(count):
        start = int(rng.integers(slots[i], max(slots[i] + 1, slots[i + 1] - 150)))
        if i % 2 == 0:
            end = start + 10
            test[start : end + 1, 0] = np.clip(test[start : end + 1, 0] + rng.choice([-1.2, 1.2]), -1, 1)
            labels.append((start, end, "point"))
        else:
            end = start + 120
            t = np.arange(end - start + 1)
            test[start : end + 1, 0] = np.clip(0.8 * np.sin(2 * np.pi * t / 12), -1, 1)
            labels.append((start, end, "contextual"))
    return labels


def write_synthetic(out: Path, spec: SynthSpec) -> list[str]:
    """Write ``train/``, ``test/`` and ``labeled_anomalies.csv`` under ``out``; returns the channel ids."""
    rng = np.random.default_rng(spec.seed)
    (out / "train").mkdir(parents=True, exist_ok=True)
    (out / "test").mkdir(parents=True, exist_ok=True)
    names = [f"Z-{i + 1}" for i in range(spec.channels)]
    with (out / "labeled_anomalies.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["chan_id", "spacecraft", "anomaly_sequences", "class", "num_values"])
        for name in names:
            phase = rng.uniform(0, 2 * np.pi)
            series = _signal(rng, spec.train_rows + spec.test_rows, spec.features, phase)
            train, test = series[: spec.train_rows], series[spec.train_rows :].copy()
            labels = _inject(rng, test, spec.anomalies_per_channel)
            np.save(out / "train" / f"{name}.npy", train)
            np.save(out / "test" / f"{name}.npy", test)
            ranges = [[start, end] for start, end, _ in labels]
            classes = "[" + ", ".join(cls for _, _, cls in labels) + "]"
            writer.writerow([name, "SYNTH", str(ranges), classes, len(test)])
    return names


@dataclass(frozen=True)
class EngineeringChannel:
    """A live-like channel in engineering units: a radiator temperature in kelvin."""

    rows: int = 6000
    anomaly_start: int | None = 5400  # a heater stuck on: the temperature climbs ~60 K for 80 rows
    anomaly_rows: int = 80
    period_s: int = 60  # seconds between rows
    seed: int = 11

    COLUMNS = ("timestamp", "temperature_k", "heater_on", "eclipse")


def engineering_rows(spec: EngineeringChannel) -> tuple[np.ndarray, np.ndarray]:
    """(epoch seconds, rows): the temperature around 290 K with an orbital swing of ±15 K, an
    eclipse flag and a heater flag that each move it, noise of 0.4 K; one anomaly if asked."""
    rng = np.random.default_rng(spec.seed)
    t = np.arange(spec.rows, dtype=np.float64)
    orbit = np.sin(2 * np.pi * t / 95.0)
    eclipse = (orbit < -0.55).astype(np.float64)
    heater = np.zeros(spec.rows)
    for start in rng.choice(spec.rows - 30, size=max(1, spec.rows // 300), replace=False):
        heater[start : start + 25] = 1.0
    kelvin = 290.0 + 15.0 * orbit - 6.0 * eclipse + 4.0 * heater + rng.normal(0, 0.4, spec.rows)
    if spec.anomaly_start is not None:
        span = slice(spec.anomaly_start, spec.anomaly_start + spec.anomaly_rows)
        kelvin[span] += np.linspace(20.0, 60.0, len(kelvin[span]))
    seconds = 1_798_761_600 + t * spec.period_s  # from 2027-01-01T00:00:00Z
    return seconds.astype(np.int64), np.column_stack([kelvin, heater, eclipse])


def write_engineering_csv(path: Path, spec: EngineeringChannel) -> Path:
    """The CSV a data engineer brings: ``timestamp`` (ISO 8601, UTC), then the channel's columns."""
    from datetime import UTC, datetime

    seconds, rows = engineering_rows(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(spec.COLUMNS)
        for second, row in zip(seconds, rows, strict=True):
            stamp = datetime.fromtimestamp(int(second), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            writer.writerow([stamp, f"{row[0]:.3f}", f"{row[1]:g}", f"{row[2]:g}"])
    return path
