"""Producer throughput against the testing stack's broker (started for the run if it is not up).

Two measurements, each into fresh topics that are deleted afterwards:
- one channel, SMAP width (25 values): P-1's test split sent ``REPEATS`` times with
  ``TelemetryPublisher.publish_batch``, points acknowledged per second;
- the whole test split (every channel of the data folder) with ``tmstream replay --max`` as a
  subprocess: wall time of the command (imports, topic creation and flush included);
- a consumer without scoring: the split's topics read back outside any group (the worker's own
  ``read_range``, kafka-python) and each record decoded and validated as the worker does
  (``TelemetryMessage.from_bytes``), points/s.
Targets: ≥50,000 points/s for one process, the whole split in ≤20 s. kafka-python is pure
Python, so the numbers depend on the CPU left over by the broker on the same machine.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from kafka import KafkaConsumer, TopicPartition

from benchmarks._harness import testing_stack
from producers.messages import TelemetryMessage
from producers.publisher import TelemetryPublisher
from producers.registry import ChannelRegistry
from producers.replay import FAST_TUNING
from tmstream.ground.settings import PROJECT_ROOT, Settings
from tmstream.ground.topic_reader import read_range
from tmstream.ground.topics import admin_client, ensure_topics

CHANNEL = "P-1"
REPEATS = 8
TARGET_POINTS_PER_S = 50_000
TARGET_FULL_SPLIT_S = 20.0


def single_channel(settings: Settings, folder: Path, run_id: str) -> dict[str, Any]:
    topic = f"bench.{run_id}.single.{CHANNEL}"
    registry_file = folder / "single.yaml"
    registry_file.write_text(yaml.safe_dump({"channels": {CHANNEL: {"topic": topic}}}))
    registry = ChannelRegistry(registry_file, settings.data_dir)
    ensure_topics(settings, [topic])
    rows = np.load(settings.data_dir / "test" / f"{CHANNEL}.npy")
    with TelemetryPublisher(settings, registry, tuning=FAST_TUNING) as publisher:
        publisher.prepare([CHANNEL])
        started = time.perf_counter()
        for _ in range(REPEATS):
            for start in range(0, len(rows), 1024):
                publisher.publish_batch(CHANNEL, start, rows[start : start + 1024])
        publisher.flush()
        elapsed = time.perf_counter() - started
    acked = publisher.stats.channel(CHANNEL).sent
    return {
        "single_channel_points": acked,
        "single_channel_values_per_point": int(rows.shape[1]),
        "single_channel_s": round(elapsed, 3),
        "single_channel_points_per_s": round(acked / elapsed),
        "compression": publisher.compression,
    }


def full_split(settings: Settings, folder: Path, run_id: str) -> dict[str, Any]:
    registry_file = folder / "full.yaml"
    registry_file.write_text(yaml.safe_dump({"topic_pattern": f"bench.{run_id}.{{channel}}"}))
    command = [
        sys.executable,
        "-m",
        "tmstream",
        "--environment",
        settings.environment,
        "replay",
        "--max",
        "--json",
        "--registry",
        str(registry_file),
    ]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=600)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"replay failed ({result.returncode}): {result.stderr.strip()}")
    summary = json.loads(result.stdout)
    return {
        **consume_split(settings, run_id, summary["total_points"]),
        "full_split_channels": len(summary["points"]),
        "full_split_points": summary["total_points"],
        "full_split_wall_s": round(wall, 2),
        "full_split_replay_s": summary["elapsed_s"],
        "full_split_points_per_s": summary["points_per_s"],
    }


def consume_split(settings: Settings, run_id: str, expected: int) -> dict[str, Any]:
    """The replayed split read back and decoded, as the worker consumes it but without scoring."""
    with admin_client(settings) as admin:
        split = re.compile(rf"bench\.{run_id}\.[^.]+$")  # not bench.<run>.single.<channel>
        topics = [name for name in admin.list_topics() if split.match(name)]
    reader = KafkaConsumer(**settings.kafka.client_options())
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in reader.partitions_for_topic(t) or ()]
    finally:
        reader.close()
    started = time.perf_counter()
    points = sum(
        1 for record in read_range(settings, dict.fromkeys(partitions, (0, None)))
        if TelemetryMessage.from_bytes(record.value).values
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    if points != expected:
        raise RuntimeError(f"consumer read {points} points back, the replay sent {expected}")
    return {
        "consumer_points": points,
        "consumer_s": round(elapsed, 2),
        "consumer_points_per_s": round(points / elapsed),
    }


def delete_topics(settings: Settings, run_id: str) -> None:
    with admin_client(settings) as admin:
        mine = [name for name in admin.list_topics() if name.startswith(f"bench.{run_id}.")]
        if mine:
            admin.delete_topics(mine)


def run() -> dict[str, Any]:
    with testing_stack() as settings:
        return measure(settings)


def measure(settings: Settings) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]
    results: dict[str, Any] = {
        "environment": settings.environment,
        "bootstrap": settings.kafka.bootstrap_servers,
        "cpu_count": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "tuning": asdict(FAST_TUNING),
    }
    try:
        with tempfile.TemporaryDirectory() as folder:
            results.update(single_channel(settings, Path(folder), run_id))
            results.update(full_split(settings, Path(folder), run_id))
    finally:
        delete_topics(settings, run_id)
    results["meets_points_per_s_target"] = results["single_channel_points_per_s"] >= TARGET_POINTS_PER_S
    results["meets_full_split_target"] = results["full_split_wall_s"] <= TARGET_FULL_SPLIT_S
    return results
