"""The real local stack (Apache Kafka, Redis, Prometheus), started once per test session.

It reuses ``tmstream stack`` with the ``testing`` overlay (its own ports and state folder), so a
developer's stack can keep running beside it. Services the session started are stopped at the end.
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
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import pytest

from tmstream.ground.exposition import sample_sum, scrape_samples
from tmstream.ground.redis import redis_client
from tmstream.ground.settings import Settings, load_settings
from tmstream.stack import LocalStack


@pytest.fixture(scope="session")
def stack_settings() -> Settings:
    return load_settings({"environment": "testing"})


@pytest.fixture(scope="session")
def stack(stack_settings: Settings) -> Iterator[Settings]:
    local = LocalStack(stack_settings)
    already = {status.name for status in local.status() if status.healthy}
    local.up()
    yield stack_settings
    for service in local.services:
        if service.name not in already and service.managed:
            service.process.stop()


@pytest.fixture
def topic_name() -> str:
    """A topic name no other test uses."""
    return f"test.{uuid.uuid4().hex[:12]}"


REFERENCE_CHANNELS = ("P-1", "D-14", "A-1", "T-12", "D-7", "G-7", "A-5", "A-3", "T-1")


@pytest.fixture(scope="session")
def reference_models(stack: Settings) -> tuple[str, ...]:
    """The 2018 models of a few channels, in the testing MLflow registry (import is idempotent)."""
    args = [arg for channel in REFERENCE_CHANNELS for arg in ("-c", channel)]
    result = subprocess.run(
        [sys.executable, "-m", "tmstream", "-e", "testing", "models", "import-reference", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return REFERENCE_CHANNELS


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Pipeline:
    """One isolated run of the real pipeline: its own topics, consumer group, Redis db and config.

    Every name carries ``run_id``, so tests share the session's broker and Redis without seeing
    each other's records; the worker and replay are real ``tmstream`` processes.
    """

    run_id: str
    env: dict[str, str]
    folder: Path
    redis_db: int
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def settings(self) -> Settings:
        """The settings the pipeline's processes see (its variables over this process's)."""
        with mock.patch.dict(os.environ, self.env):
            return load_settings()

    def topic(self, channel: str, spacecraft: str) -> str:
        return f"telemetry.r{self.run_id}.{channel}"

    def tmstream(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tmstream", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **self.env},
        )

    def start_worker(self, name: str = "w1") -> int:
        port = free_port()
        log = (self.folder / f"worker-{name}.log").open("wb")
        self.workers[name] = subprocess.Popen(
            [sys.executable, "-m", "tmstream", "worker", "--name", name, "--metrics-port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
        )
        self.ports[name] = port
        return port

    def wait_ready(self, name: str = "w1", timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.workers[name].poll() is not None:
                raise AssertionError(f"worker {name} exited: {self.log(name)[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.ports[name]}/ready", timeout=2) as r:
                    if json.loads(r.read())["ready"]:
                        return
            except (OSError, ValueError):
                pass
            time.sleep(0.5)
        raise AssertionError(f"worker {name} not ready in {timeout} s: {self.log(name)[-2000:]}")

    def log(self, name: str) -> str:
        return (self.folder / f"worker-{name}.log").read_text(errors="replace")

    def metric(self, name: str, metric: str, **labels: str) -> float:
        """The sum of worker ``name``'s samples called ``metric`` with these labels, from its /metrics."""
        return sample_sum(scrape_samples(f"http://127.0.0.1:{self.ports[name]}/metrics"), metric, **labels)

    def stop_worker(self, name: str = "w1", sig: int = signal.SIGTERM) -> None:
        process = self.workers.pop(name)
        process.send_signal(sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def topic_events(self) -> list[dict[str, object]]:
        """The anomalies topic as a third-party client (kcat) reads it."""
        topic = self.env["TMSTREAM_KAFKA_ANOMALIES_TOPIC"]
        bootstrap = self.settings.kafka.bootstrap_servers
        command = ["kcat", "-C", "-b", bootstrap, "-t", topic, "-e", "-q", "-f", "%s\n"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]

    def redis_events(self) -> list[dict[str, object]]:
        client = redis_client(self.settings)
        return [json.loads(fields[b"event"]) for _, fields in client.xrange("tmstream:anomalies")]

    def wait_for(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.5)
        logs = "\n".join(self.log(name)[-1500:] for name in self.workers)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{logs}")

    def close(self) -> None:
        for name in list(self.workers):
            self.stop_worker(name, signal.SIGKILL)


@pytest.fixture
def pipeline(stack: Settings, reference_models: tuple[str, ...], tmp_path: Path) -> Iterator[Pipeline]:
    run_id = uuid.uuid4().hex[:8]
    config = tmp_path / "config"
    shutil.copytree(Path(__file__).resolve().parents[2] / "config", config)
    (config / "channels.yaml").write_text(
        f"topic_pattern: telemetry.r{run_id}.{{channel}}\ndiscover: true\nchannels: {{}}\n"
    )
    redis_db = 1 + int(run_id, 16) % 15
    env = {
        "TMSTREAM_ENVIRONMENT": "testing",
        "TMSTREAM_CONFIG_DIR": str(config),
        "TMSTREAM_STATE_DIR": str(stack.state_dir),
        "TMSTREAM_KAFKA_TELEMETRY_TOPIC_PATTERN": rf"telemetry\.r{run_id}\..+",
        "TMSTREAM_KAFKA_ANOMALIES_TOPIC": f"anomalies.r{run_id}",
        "TMSTREAM_KAFKA_DEADLETTER_TOPIC": f"deadletter.r{run_id}",
        "TMSTREAM_KAFKA_STATE_TOPIC": f"tmstream.worker-state.r{run_id}",
        "TMSTREAM_KAFKA_CHANNELS_TOPIC": f"tmstream.channels.r{run_id}",
        "TMSTREAM_KAFKA_SHADOW_TOPIC": f"anomalies.shadow.r{run_id}",
        "TMSTREAM_WORKER_GROUP": f"tmstream-worker-r{run_id}",
        "TMSTREAM_REDIS_URL": f"redis://127.0.0.1:{stack.redis.port}/{redis_db}",
    }
    found = Pipeline(run_id, env, tmp_path, redis_db)
    redis_client(found.settings).flushdb()
    yield found
    found.close()
