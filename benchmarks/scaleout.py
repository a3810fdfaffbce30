"""Scale-out of the scoring worker: N worker processes in one consumer group, measured on the real stack.

Default settings: a topic per channel with ``kafka.topic_partitions`` (1) partition, which the
worker's assignor (``stream_workers/assignor.py``) spreads over the group member by member. Each
configuration gets its own topics, consumer group, state topic, anomalies topic and Redis database.
Its N workers are started first and the group is left to settle (every worker ready, i.e. holding
partitions) before the test split of ``CHANNELS`` is replayed at full speed, so the workers score a
backlog with a stable assignment. Measured per configuration: the partitions and channels each
worker holds, the points each worker scored and its rate over the run's scoring time, the
throughput (points scored over the time from the first scored point to the last, polled from
``/metrics``), and the emissions on its anomalies topic, which must be one worker's.

Then the fleet: every channel of the registry (82 topics), workers joining one by one, the
partitions each holds after each join and how many the join moved (the group leader's log).

Runs on the testing stack (started if it is not up); the reference models of the channels are
imported into its registry (idempotent).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._harness import (
    Configuration,
    import_models,
    load_average,
    metric_samples,
    metric_sum,
    testing_stack,
    wait_for,
)
from producers.registry import ChannelRegistry
from tmstream.ground.settings import Settings
from tmstream.ground.topic_reader import read_topic

# Twelve MSL channels (55 values per point), about 2,000-2,300 test rows each.
CHANNELS = ("D-15", "M-1", "D-16", "M-2", "T-4", "T-12", "M-4", "M-7", "C-2", "M-3", "T-5", "C-1")
WORKER_COUNTS = (1, 2, 3)
SCORED_TIMEOUT_S = 300.0
SPREAD_LOG = re.compile(r"spread (\d+) partitions over (\d+) members \[[\d, ]*\]; (\d+) moved")
Emission = tuple[str, str, int]  # event id, status, end index


@dataclass(frozen=True)
class WorkerResult:
    name: str
    assigned_partitions: int
    channels: tuple[str, ...]  # those it scored points of: a channel's series live on its owner only
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
    emissions: list[Emission]


class ScaleoutConfiguration(Configuration):
    """The scale-out measurement on an isolated run: replay at full speed into a settled group."""

    def anomalies(self) -> list[dict[str, Any]]:
        records = read_topic(self.stack, self.env["TMSTREAM_KAFKA_ANOMALIES_TOPIC"])
        return [json.loads(record.value) for record in records]

    def worker(self, name: str) -> WorkerResult:
        samples = metric_samples(self.ports[name])
        scored = Counter[str]()
        for sample in samples:
            if sample.name == "tmstream_points_scored_total":
                scored[sample.labels["channel"]] += round(sample.value)
        assigned = sum(s.value for s in samples if s.name == "tmstream_assigned_partitions")
        channels = tuple(sorted(channel for channel, points in scored.items() if points > 0))
        return WorkerResult(name, round(assigned), channels, sum(scored.values()))

    def measure(self) -> ConfigurationResult:
        """Replay into the settled group, time the scoring, then collect the results."""
        expected = self.expected_points()
        self.tmstream("replay", "--channels", ",".join(self.channels), "--max")
        first, last = self.wait_scored(expected, SCORED_TIMEOUT_S)
        scoring_s = max(last - first, 1e-3)
        time.sleep(self.stack.worker.idle_close_s + 2)  # idle channels have their tail evaluated and close
        events = self.anomalies()
        total = self.scored()
        return ConfigurationResult(
            workers=[self.worker(name) for name in self.ports],
            partitions_total=len(self.channels) * self.partitions,
            points_expected=expected,
            points_scored=total,
            scoring_s=round(scoring_s, 2),
            points_per_s=round(total / scoring_s),
            closed_events=frozenset(
                (e["channel"], e["start_index"], e["end_index"], e["event_id"])
                for e in events
                if e["status"] == "closed"
            ),
            emissions=[(e["event_id"], e["status"], e["end_index"]) for e in events],
        )


@contextmanager
def configuration(
    stack: Settings, folder: Path, workers: int, channels: tuple[str, ...] = CHANNELS
) -> Iterator[ScaleoutConfiguration]:
    """A configuration on the stack's default partitions with ``workers`` started; stopped on exit."""
    found = ScaleoutConfiguration(stack, folder, channels, stack.kafka.topic_partitions)
    try:
        found.start_workers(workers)
        yield found
    finally:
        found.close()


def settled_split(config: Configuration, total: int, timeout: float = 120) -> list[int]:
    """Partitions per worker once the group holds all ``total`` and two polls 3 s apart agree."""
    seen: list[list[int]] = []

    def settled() -> bool:
        seen.append(
            [round(metric_sum(port, "tmstream_assigned_partitions")) for port in config.ports.values()]
        )
        return len(seen) > 1 and seen[-1] == seen[-2] and sum(seen[-1]) == total and min(seen[-1]) > 0

    wait_for(settled, timeout, f"{len(config.ports)} workers holding {total} partitions", every=3)
    return seen[-1]


def moved_at_joins(config: Configuration, workers: int) -> list[int]:
    """Partitions that changed member at each join, from the leader's ``spread …`` log lines: the
    lines for a group of n members, summed (a join may take more than one rebalance)."""
    moved = Counter[int]()
    for name in config.processes:
        for _, members, count in SPREAD_LOG.findall(config.log(name)):
            moved[int(members)] += int(count)
    return [moved[n] for n in range(2, workers + 1)]


def fleet_split(stack: Settings, folder: Path, workers: int = max(WORKER_COUNTS)) -> dict[str, Any]:
    """Every registry channel on the default layout; workers join one at a time (no replay)."""
    channels = tuple(ChannelRegistry.load(stack.data_dir).names())
    found = Configuration(stack, folder, channels, stack.kafka.topic_partitions)
    total = len(channels) * stack.kafka.topic_partitions
    try:
        found.start_workers(1)
        splits = [settled_split(found, total)]
        for index in range(2, workers + 1):
            found.start_worker(f"w{index}")
            found.wait_ready([f"w{index}"], 120)
            splits.append(settled_split(found, total))
        return {
            "channels": len(channels),
            "assigned_partitions": splits,
            "moved_at_join": moved_at_joins(found, workers),
        }
    finally:
        found.close()


def summary(result: ConfigurationResult, baseline: list[Emission]) -> dict[str, Any]:
    return {
        "points_per_s": result.points_per_s,
        "scoring_s": result.scoring_s,
        "points_scored": result.points_scored,
        "points_expected": result.points_expected,
        "assigned_partitions": [w.assigned_partitions for w in result.workers],
        "channels_per_worker": [len(w.channels) for w in result.workers],
        "points_per_worker": [w.points_scored for w in result.workers],
        "points_per_s_per_worker": [round(w.points_scored / result.scoring_s) for w in result.workers],
        "every_worker_owns_channels": all(w.channels for w in result.workers),
        "closed_events": len(result.closed_events),
        "emissions": len(result.emissions),
        "same_emissions": Counter(result.emissions) == Counter(baseline),
    }


def run() -> dict[str, Any]:
    """1, 2 and 3 workers on the same input (the emissions must be one worker's), then the fleet."""
    with testing_stack() as stack:
        return measure(stack)


def measure(stack: Settings) -> dict[str, Any]:
    import_models(CHANNELS)
    results: dict[str, Any] = {
        "partitions_per_topic": stack.kafka.topic_partitions,
        "channels": len(CHANNELS),
        "cpus": os.cpu_count(),
        "load_average_before": load_average(),
    }
    baseline: list[Emission] | None = None
    folder = Path(stack.state_dir) / "bench-scaleout"
    folder.mkdir(parents=True, exist_ok=True)
    for count in WORKER_COUNTS:
        with configuration(stack, folder, count) as config:
            result = config.measure()
        baseline = result.emissions if baseline is None else baseline
        results[f"workers_{count}"] = summary(result, baseline)
    results["fleet"] = fleet_split(stack, folder)
    results["load_average_after"] = load_average()
    return results
