"""Scale-out of the scoring worker: N worker processes in one consumer group, measured on the real stack.

Each configuration gets its own topics (``PARTITIONS`` partitions each), consumer group, state topic,
anomalies topic and Redis database. Its N workers are started first and the group is left to settle
(every worker ready, i.e. holding partitions) before the test split of ``CHANNELS`` is replayed at full
speed, so the workers score a backlog with a stable assignment. Measured per configuration: the
partitions each worker holds, the points each worker scored, the throughput (points scored over the
time from the first scored point to the last, polled from ``/metrics``), and the closed anomaly
events on its anomalies topic.

Runs on the testing stack (started if it is not up); the reference models of the channels are
imported into its registry (idempotent). Faust assigns partition *numbers* to workers, the same
numbers for every telemetry topic, and a channel's points all sit in the partition its key hashes to:
the channels below are picked two per partition number (murmur2 of the key modulo 6), so any
worker count that divides 6 gets the same share of channels.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._harness import (
    Configuration,
    import_models,
    load_average,
    metric_sum,
    testing_stack,
    wait_for,
)
from tmstream.ground.settings import Settings
from tmstream.ground.topic_reader import read_topic

PARTITIONS = 6
# Two MSL channels (55 values per point) per partition number 0..5, about 2,000-2,300 test rows each.
CHANNELS = ("D-15", "M-1", "D-16", "M-2", "T-4", "T-12", "M-4", "M-7", "C-2", "M-3", "T-5", "C-1")
WORKER_COUNTS = (1, 2, 3)
SCORED_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class WorkerResult:
    name: str
    assigned_partitions: int
    points_scored: int


@dataclass(frozen=True)
class ConfigurationResult:
    workers: list[WorkerResult]
    partitions_total: int
    points_expected: int
    points_scored: int
    scoring_s: float
    points_per_s: float
    closed_events: frozenset[tuple[str, int, int, str]]  # channel, start index, end index, event id
    emissions: int


class ScaleoutConfiguration(Configuration):
    """The scale-out measurement on an isolated run: replay at full speed into a settled group."""

    def closed_events(self) -> tuple[frozenset[tuple[str, int, int, str]], int]:
        """Closed events on the anomalies topic as (channel, start, end, event id), and all emissions."""
        records = read_topic(self.stack, self.env["TMSTREAM_KAFKA_ANOMALIES_TOPIC"])
        events = [json.loads(record.value) for record in records]
        closed = frozenset(
            (e["channel"], e["start_index"], e["end_index"], e["event_id"])
            for e in events
            if e["status"] == "closed"
        )
        return closed, len(events)

    def measure(self) -> ConfigurationResult:
        """Replay into the settled group, time the scoring, then collect the results."""
        expected = self.expected_points()
        self.tmstream("replay", "--channels", ",".join(self.channels), "--max")
        first, last = self.wait_scored(expected, SCORED_TIMEOUT_S)
        scoring_s = max(last - first, 1e-3)
        time.sleep(self.stack.worker.idle_close_s + 2)  # idle channels have their tail evaluated and close
        closed, emissions = self.closed_events()
        workers = [
            WorkerResult(
                name,
                round(metric_sum(port, "tmstream_assigned_partitions")),
                round(metric_sum(port, "tmstream_points_scored_total")),
            )
            for name, port in self.ports.items()
        ]
        total = self.scored()
        return ConfigurationResult(
            workers=workers,
            partitions_total=len(self.channels) * self.partitions,
            points_expected=expected,
            points_scored=total,
            scoring_s=round(scoring_s, 2),
            points_per_s=round(total / scoring_s),
            closed_events=closed,
            emissions=emissions,
        )


@contextmanager
def configuration(
    stack: Settings,
    folder: Path,
    workers: int,
    channels: tuple[str, ...] = CHANNELS,
    partitions: int = PARTITIONS,
) -> Iterator[ScaleoutConfiguration]:
    """A configuration of the scale-out setup with ``workers`` started; they are stopped on exit."""
    found = ScaleoutConfiguration(stack, folder, channels, partitions)
    try:
        found.start_workers(workers)
        yield found
    finally:
        found.close()


def single_partition_split(stack: Settings, folder: Path, workers: int = 2) -> list[int]:
    """Partitions each of ``workers`` workers holds when every telemetry topic has one partition."""
    found = ScaleoutConfiguration(stack, folder, CHANNELS, partitions=1)
    try:
        found.tmstream("topics", "create")
        for index in range(1, workers + 1):
            found.start_worker(f"w{index}")
            if index == 1:
                found.wait_ready(["w1"], 120)
        wait_for(lambda: all(found.answers(name) for name in found.processes), 120, "workers up")
        time.sleep(15)  # past the rebalance the late workers trigger
        return [round(metric_sum(port, "tmstream_assigned_partitions")) for port in found.ports.values()]
    finally:
        found.close()


def summary(result: ConfigurationResult) -> dict[str, Any]:
    return {
        "points_per_s": result.points_per_s,
        "scoring_s": result.scoring_s,
        "points_scored": result.points_scored,
        "points_expected": result.points_expected,
        "assigned_partitions": [w.assigned_partitions for w in result.workers],
        "points_per_worker": [w.points_scored for w in result.workers],
        "closed_events": len(result.closed_events),
        "emissions": result.emissions,
    }


def run() -> dict[str, Any]:
    """1, 2 and 3 workers on the same input; the closed events must be the same for every count."""
    with testing_stack() as stack:
        return measure(stack)


def measure(stack: Settings) -> dict[str, Any]:
    import_models(CHANNELS)
    results: dict[str, Any] = {
        "partitions": PARTITIONS,
        "channels": len(CHANNELS),
        "cpus": os.cpu_count(),
        "load_average_before": load_average(),
    }
    baseline: frozenset[tuple[str, int, int, str]] | None = None
    folder = Path(stack.state_dir) / "bench-scaleout"
    folder.mkdir(parents=True, exist_ok=True)
    for count in WORKER_COUNTS:
        with configuration(stack, folder, count) as config:
            result = config.measure()
        baseline = result.closed_events if baseline is None else baseline
        results[f"workers_{count}"] = {**summary(result), "same_events": result.closed_events == baseline}
    results["one_partition_two_workers_assigned"] = single_partition_split(stack, folder)
    results["load_average_after"] = load_average()
    return results
