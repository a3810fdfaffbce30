"""Scale-out of the scoring worker: N worker processes in one consumer group, measured on the real stack.

Each configuration gets its own topics (``PARTITIONS`` partitions each), consumer group, state topic,
anomalies topic and Redis database. Its N workers are started first and the group is left to settle
(every worker ready, i.e. holding partitions) before the test split of ``CHANNELS`` is replayed at full
speed, so the workers score a backlog with a stable assignment. Measured per configuration: the
partitions each worker holds, the points each worker scored, the throughput (points scored over the
time from the first scored point to the last, polled from ``/metrics``), and the closed anomaly
events on its anomalies topic.

Needs the testing stack (``tmstream -e testing stack up``); the reference models of the channels are
imported into its registry (idempotent). Faust assigns partition *numbers* to workers, the same
numbers for every telemetry topic, and a channel's points all sit in the partition its key hashes to:
the channels below are picked two per partition number (murmur2 of the key modulo 6), so any
worker count that divides 6 gets the same share of channels.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from prometheus_client.parser import text_string_to_metric_families

from producers.registry import ChannelRegistry
from stream_workers.topic_reader import read_topic
from tmstream.settings import Settings, config_dir, load_settings

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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def metric_sum(port: int, sample_name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == sample_name
    )


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


class Configuration:
    """One isolated run: its own topics, group, state topic, anomalies topic and Redis db."""

    def __init__(self, stack: Settings, folder: Path, channels: tuple[str, ...], partitions: int) -> None:
        run_id = uuid.uuid4().hex[:8]
        self.folder = folder / f"s{run_id}"
        self.channels = channels
        self.partitions = partitions
        config = self.folder / "config"
        shutil.copytree(config_dir(), config)
        known = ChannelRegistry.load(stack.data_dir)
        entries = {
            c: {"spacecraft": known.get(c).spacecraft, "features": known.get(c).features} for c in channels
        }
        (config / "channels.yaml").write_text(
            yaml.safe_dump(
                {"topic_pattern": f"telemetry.s{run_id}.{{channel}}", "discover": False, "channels": entries}
            )
        )
        self.env = {
            "TMSTREAM_ENVIRONMENT": "testing",
            "TMSTREAM_CONFIG_DIR": str(config),
            "TMSTREAM_STATE_DIR": str(stack.state_dir),
            "TMSTREAM_DATA_DIR": str(stack.data_dir),
            "TMSTREAM_KAFKA_TOPIC_PARTITIONS": str(partitions),
            "TMSTREAM_KAFKA_TELEMETRY_TOPIC_PATTERN": rf"telemetry\.s{run_id}\..+",
            "TMSTREAM_KAFKA_ANOMALIES_TOPIC": f"anomalies.s{run_id}",
            "TMSTREAM_KAFKA_DEADLETTER_TOPIC": f"deadletter.s{run_id}",
            "TMSTREAM_KAFKA_STATE_TOPIC": f"tmstream.worker-state.s{run_id}",
            "TMSTREAM_WORKER_GROUP": f"tmstream-worker-s{run_id}",
            "TMSTREAM_REDIS_URL": f"redis://127.0.0.1:{stack.redis.port}/{1 + int(run_id, 16) % 15}",
        }
        self.stack = stack
        self.ports: dict[str, int] = {}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def tmstream(self, *args: str, timeout: float = 300) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "tmstream", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **self.env},
        )
        if result.returncode != 0:
            raise RuntimeError(f"tmstream {' '.join(args)} failed: {result.stderr[-2000:]}")
        return result.stdout

    def expected_points(self) -> int:
        """Points the workers score: every test row after the first ``l_s`` (the first window)."""
        l_s = self.stack.model.l_s
        rows = (
            np.load(self.stack.data_dir / "test" / f"{c}.npy", mmap_mode="r").shape[0] for c in self.channels
        )
        return sum(n - l_s for n in rows)

    def start_workers(self, count: int, timeout: float = 120) -> None:
        """``count`` workers, then wait until each holds partitions (a settled group).

        The first worker starts alone: workers starting at the same instant race to create the
        state topic and the loser exits (``TopicAlreadyExistsError`` in ``prepare_topics``).
        """
        self.tmstream("topics", "create")
        for index in range(1, count + 1):
            self.start_worker(f"w{index}")
            if index == 1:
                self.wait_ready(["w1"], timeout)
        self.wait_ready(list(self.processes), timeout)

    def start_worker(self, name: str) -> None:
        self.ports[name] = port = free_port()
        log = (self.folder / f"worker-{name}.log").open("wb")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "tmstream", "worker", "--name", name, "--metrics-port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
        )

    def wait_ready(self, names: list[str], timeout: float) -> None:
        try:
            wait_for(lambda: all(self.ready(name) for name in names), timeout, f"ready workers {names}")
        except TimeoutError as exc:
            logs = "\n".join(self.log(name)[-1500:] for name in names)
            raise TimeoutError(f"{exc}\n{logs}") from exc

    def ready(self, name: str) -> bool:
        if self.processes[name].poll() is not None:
            raise RuntimeError(f"worker {name} exited: {self.log(name)[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[name]}/ready", timeout=2) as r:
                return bool(json.loads(r.read())["ready"])
        except (OSError, ValueError):
            return False

    def answers(self, name: str) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[name]}/health", timeout=2):
                return True
        except OSError:
            return False

    def log(self, name: str) -> str:
        return (self.folder / f"worker-{name}.log").read_text(errors="replace")

    def scored(self) -> int:
        return round(sum(metric_sum(port, "tmstream_points_scored_total") for port in self.ports.values()))

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
        samples: list[tuple[float, int]] = []

        def done() -> bool:
            samples.append((time.monotonic(), self.scored()))
            return samples[-1][1] >= expected

        wait_for(done, SCORED_TIMEOUT_S, f"{expected} points scored")
        first = next(t for t, n in samples if n > 0)
        scoring_s = max(samples[-1][0] - first, 1e-3)
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

    def close(self) -> None:
        for process in self.processes.values():
            process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def configuration(
    stack: Settings,
    folder: Path,
    workers: int,
    channels: tuple[str, ...] = CHANNELS,
    partitions: int = PARTITIONS,
) -> Iterator[Configuration]:
    """A configuration with ``workers`` started; they are stopped on exit."""
    found = Configuration(stack, folder, channels, partitions)
    try:
        found.start_workers(workers)
        yield found
    finally:
        found.close()


def import_models(channels: tuple[str, ...]) -> None:
    args = [arg for channel in channels for arg in ("-c", channel)]
    subprocess.run(
        [sys.executable, "-m", "tmstream", "-e", "testing", "models", "import-reference", *args],
        check=True,
        capture_output=True,
        timeout=600,
    )


def single_partition_split(stack: Settings, folder: Path, workers: int = 2) -> list[int]:
    """Partitions each of ``workers`` workers holds when every telemetry topic has one partition."""
    found = Configuration(stack, folder, CHANNELS, partitions=1)
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
    stack = load_settings({"environment": "testing"})
    import_models(CHANNELS)
    results: dict[str, Any] = {"partitions": PARTITIONS, "channels": len(CHANNELS), "cpus": os.cpu_count()}
    baseline: frozenset[tuple[str, int, int, str]] | None = None
    folder = Path(stack.state_dir) / "bench-scaleout"
    folder.mkdir(parents=True, exist_ok=True)
    for count in WORKER_COUNTS:
        with configuration(stack, folder, count) as config:
            result = config.measure()
        baseline = result.closed_events if baseline is None else baseline
        results[f"workers_{count}"] = {**summary(result), "same_events": result.closed_events == baseline}
    results["one_partition_two_workers_assigned"] = single_partition_split(stack, folder)
    return results
