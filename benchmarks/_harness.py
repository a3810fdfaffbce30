"""Shared pieces of the stream benchmarks: an isolated run of worker processes on the real stack.

A ``Configuration`` gets its own topics, consumer group, state topic, anomalies topic and Redis
database, so runs neither see each other's records nor other sessions' (the stack is shared). The
helpers read the workers' ``/metrics``; latency quantiles come from histogram bucket deltas, the way
Prometheus' ``histogram_quantile`` computes them, since the worker exports no per-point times.
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
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from prometheus_client.samples import Sample

from producers.registry import ChannelRegistry
from tmstream.ground.exposition import sample_sum, scrape_samples
from tmstream.ground.settings import Settings, config_dir, load_settings

Buckets = list[tuple[float, float]]  # (upper bound "le", cumulative count), ascending, +Inf last


def best_seconds(call: Callable[[], object], repeats: int = 5) -> float:
    """The fastest of ``repeats`` runs of ``call``: the least disturbed by a shared machine."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    return best


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages: other sessions share this machine, so every figure carries it."""
    return [round(value, 2) for value in os.getloadavg()]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def metric_samples(port: int, timeout: float = 5) -> list[Sample]:
    """Every sample of a worker's ``/metrics``; with thousands of channels the page is large (a
    dozen series per channel), so fleet benchmarks pass a longer ``timeout``."""
    return scrape_samples(f"http://127.0.0.1:{port}/metrics", timeout)


def metric_sum(port: int, sample_name: str, timeout: float = 5) -> float:
    return sample_sum(metric_samples(port, timeout), sample_name)


def histogram_buckets(port: int, histogram: str, timeout: float = 5) -> Buckets:
    """The cumulative buckets of an unlabelled histogram, e.g. ``tmstream_event_to_scored_seconds``."""
    found = [
        (float(sample.labels["le"]), sample.value)
        for sample in metric_samples(port, timeout)
        if sample.name == f"{histogram}_bucket"
    ]
    return sorted(found)


def bucket_quantile(q: float, after: Buckets, before: Buckets | None = None) -> float | None:
    """The q-quantile of the observations between two scrapes of a histogram (None if there are none).

    Linear inside the bucket holding rank q·n (lower bound 0 for the first bucket); a rank in the
    +Inf bucket returns the highest finite bound, which is then a lower bound of the true value.
    """
    previous = dict(before or [])
    deltas = [(le, count - previous.get(le, 0.0)) for le, count in after]
    total = deltas[-1][1] if deltas else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for le, cumulative in deltas:
        if cumulative >= rank:
            if le == float("inf"):
                return lower
            inside = cumulative - below
            return lower + (le - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = le, cumulative
    return lower


def rss_bytes(pid: int) -> dict[str, int]:
    """Resident set size now and at its peak (``VmRSS``, ``VmHWM`` from /proc)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024
    return {"rss_bytes": fields["VmRSS"], "peak_rss_bytes": fields["VmHWM"]}


def wait_for(check: Callable[[], bool], timeout: float, what: str, every: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def truncated_split(source: Path, target: Path, rows: int, channels: Sequence[str]) -> Path:
    """A data folder whose test split holds the first ``rows`` rows of each channel (labels copied)."""
    (target / "test").mkdir(parents=True, exist_ok=True)
    shutil.copy(source / "labeled_anomalies.csv", target / "labeled_anomalies.csv")
    for channel in channels:
        series = np.load(source / "test" / f"{channel}.npy", mmap_mode="r")
        np.save(target / "test" / f"{channel}.npy", np.asarray(series[:rows]))
    return target


class Configuration:
    """One isolated run: its own topics, group, state topic, anomalies topic and Redis db.

    ``data_dir`` replaces the stack's data folder (a truncated or synthetic split); with
    ``shared_topic`` every channel goes to one topic of ``partitions`` partitions (keyed by channel)
    instead of a topic per channel, so a fleet of thousands of channels costs the broker one topic.
    """

    def __init__(
        self,
        stack: Settings,
        folder: Path,
        channels: tuple[str, ...],
        partitions: int,
        *,
        data_dir: Path | None = None,
        shared_topic: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> None:
        run_id = uuid.uuid4().hex[:8]
        self.run_id = run_id
        self.folder = folder / f"s{run_id}"
        self.channels = channels
        self.partitions = partitions
        self.data_dir = data_dir or stack.data_dir
        config = self.folder / "config"
        shutil.copytree(config_dir(), config)
        known = ChannelRegistry.load(self.data_dir)
        entries: dict[str, dict[str, Any]] = {}
        for channel in channels:
            spec = known.get(channel)
            entries[channel] = {"spacecraft": spec.spacecraft, "features": spec.features}
            if shared_topic:
                entries[channel]["topic"] = f"telemetry.s{run_id}.fleet"
        (config / "channels.yaml").write_text(
            yaml.safe_dump(
                {"topic_pattern": f"telemetry.s{run_id}.{{channel}}", "discover": False, "channels": entries}
            )
        )
        self.env = {
            "TMSTREAM_ENVIRONMENT": "testing",
            "TMSTREAM_CONFIG_DIR": str(config),
            "TMSTREAM_STATE_DIR": str(stack.state_dir),
            "TMSTREAM_DATA_DIR": str(self.data_dir),
            "TMSTREAM_KAFKA_TOPIC_PARTITIONS": str(partitions),
            "TMSTREAM_KAFKA_TELEMETRY_TOPIC_PATTERN": rf"telemetry\.s{run_id}\..+",
            "TMSTREAM_KAFKA_ANOMALIES_TOPIC": f"anomalies.s{run_id}",
            "TMSTREAM_KAFKA_DEADLETTER_TOPIC": f"deadletter.s{run_id}",
            "TMSTREAM_KAFKA_STATE_TOPIC": f"tmstream.worker-state.s{run_id}",
            "TMSTREAM_WORKER_GROUP": f"tmstream-worker-s{run_id}",
            "TMSTREAM_REDIS_URL": f"redis://127.0.0.1:{stack.redis.port}/{1 + int(run_id, 16) % 15}",
            **(env or {}),
        }
        self.stack = stack
        self.ports: dict[str, int] = {}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.started: dict[str, float] = {}

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

    def replay(self, *args: str) -> subprocess.Popen[bytes]:
        """``tmstream replay`` of the run's channels in the background (stop it with ``stop``)."""
        log = (self.folder / "replay.log").open("wb")
        return subprocess.Popen(
            [sys.executable, "-m", "tmstream", "replay", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
        )

    def expected_points(self) -> int:
        """Points the workers score: every test row after the first ``l_s`` (the first window)."""
        l_s = self.stack.model.l_s
        rows = (np.load(self.data_dir / "test" / f"{c}.npy", mmap_mode="r").shape[0] for c in self.channels)
        return sum(max(0, n - l_s) for n in rows)

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
        self.started[name] = time.time()
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

    def models(self, name: str) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[name]}/models", timeout=5) as r:
            return dict(json.loads(r.read()))

    def log(self, name: str) -> str:
        return (self.folder / f"worker-{name}.log").read_text(errors="replace")

    def scored(self, timeout: float = 5) -> int:
        return round(
            sum(metric_sum(port, "tmstream_points_scored_total", timeout) for port in self.ports.values())
        )

    def wait_scored(self, expected: int, timeout: float) -> tuple[float, float]:
        """Poll until ``expected`` points are scored; (first scored, last scored) on the monotonic clock."""
        samples: list[tuple[float, int]] = []

        def done() -> bool:
            samples.append((time.monotonic(), self.scored()))
            return samples[-1][1] >= expected

        wait_for(done, timeout, f"{expected} points scored", every=0.25)
        return next(t for t, n in samples if n > 0), samples[-1][0]

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
    stack: Settings, folder: Path, workers: int, channels: tuple[str, ...], partitions: int, **options: Any
) -> Iterator[Configuration]:
    """A configuration with ``workers`` started; they are stopped on exit."""
    found = Configuration(stack, folder, channels, partitions, **options)
    try:
        found.start_workers(workers)
        yield found
    finally:
        found.close()


def stop(process: subprocess.Popen[bytes]) -> None:
    """End a background command started by this harness."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def import_models(channels: Sequence[str]) -> None:
    args = [arg for channel in channels for arg in ("-c", channel)]
    subprocess.run(
        [sys.executable, "-m", "tmstream", "-e", "testing", "models", "import-reference", *args],
        check=True,
        capture_output=True,
        timeout=900,
    )


@contextmanager
def testing_stack() -> Iterator[Settings]:
    """The testing overlay's local stack (Kafka, Redis, Prometheus): services already answering are
    used as they are, the others are started here and stopped on exit, so each stream benchmark is
    one command on a fresh checkout."""
    from tmstream.stack import LocalStack

    settings = load_settings({"environment": "testing"})
    stack = LocalStack(settings)
    missing = [service for service in stack.services if not service.healthy()]
    if missing:
        stack.up()
    try:
        yield settings
    finally:
        for service in reversed(missing):
            service.process.stop()
