"""Producer throughput against the testing stack's broker (started for the run if it is not up).

One run measures each cost apart, for each producer client installed (``kafka.producer_client``:
kafka-python always, confluent-kafka with the ``confluent`` extra), into fresh topics deleted
afterwards:

- ``encoding``: the publisher's per-chunk CPU work without Kafka, P-1 (25 values) ``REPEATS``
  times in chunks of 1,024: row checks (``check_rows``), the one encoder (``encode_points``) alone,
  and both;
- ``clients.<client>.send_only``: the client alone: pre-encoded P-1 records sent and acknowledged,
  per compression codec (``none``, ``lz4``, ``zstd``, ``gzip``; ``null`` where the client lacks it),
  default batching;
- ``clients.<client>.batching``: ``publish_batch`` (encoding + send, lz4) per linger/batch size:
  Kafka's defaults (0 ms, 16 KiB), ours, and a longer linger;
- ``clients.<client>.single_channel_points_per_s``: ``publish_batch`` with the default tuning:
  the one-process figure (target ≥50,000 points/s);
- ``clients.<client>.full_split``: ``tmstream replay --max`` of the whole test split (82 channel
  topics, 510,225 points) as a subprocess: wall time of the command (imports, topic creation and
  flush included; target ≤20 s) and the replay's own elapsed time;
- ``clients.<client>.fleet``: ``replay --max`` of a synthetic fleet of ``FLEET`` channels
  (``TMSTREAM_BENCH_PRODUCER_FLEET``, 0 skips it; 80 rows each) on one 6-partition topic, as the
  scale benchmark replays it: the per-channel cost;
- ``consumer``: the default client's split read back outside any group (the worker's
  ``read_range``) and each record decoded and validated as the worker does, points/s.

Both clients are pure overhead on a broker that shares the machine's two cores, so every section
carries the 1-minute load average it ran at.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from kafka import KafkaConsumer, TopicPartition
from kafka.partitioner.default import murmur2

from benchmarks._harness import load_average, testing_stack
from producers.clients import ProducerTuning, open_client
from producers.messages import TelemetryMessage, encode_points, message_prefix
from producers.metrics import PublisherStats
from producers.publisher import TelemetryPublisher, check_rows
from producers.registry import ChannelRegistry
from producers.replay import FAST_TUNING, MAX_CHUNK
from producers.synth import SynthSpec, write_synthetic
from tmstream.ground.settings import PROJECT_ROOT, Settings
from tmstream.ground.topic_reader import read_range
from tmstream.ground.topics import ConnectPolicy, admin_client, ensure_topics

CHANNEL = "P-1"
REPEATS = 8
CODECS = ("none", "lz4", "zstd", "gzip")
BATCHING = {"0ms_16KiB": (0, 16 * 1024), "20ms_512KiB": (20, 512 * 1024), "100ms_1MiB": (100, 1024 * 1024)}
FLEET = int(os.environ.get("TMSTREAM_BENCH_PRODUCER_FLEET", "10000"))
FLEET_ROWS = 80
FLEET_PARTITIONS = 6
TARGET_POINTS_PER_S = 50_000
TARGET_FULL_SPLIT_S = 20.0
# the Python modules each client needs for each codec (librdkafka has all four built in)
KAFKA_PYTHON_CODECS = {"none": None, "lz4": "lz4", "zstd": "zstandard", "gzip": None}


def clients() -> list[str]:
    found = ["kafka-python"]
    if importlib.util.find_spec("confluent_kafka"):
        found.append("confluent-kafka")
    return found


def with_client(settings: Settings, client: str) -> Settings:
    return settings.model_copy(
        update={"kafka": settings.kafka.model_copy(update={"producer_client": client})}
    )


def chunks(rows: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    for _ in range(REPEATS):
        for start in range(0, len(rows), MAX_CHUNK):
            yield start, rows[start : start + MAX_CHUNK]


def rate(points: int, seconds: float) -> dict[str, Any]:
    return {"points": points, "s": round(seconds, 3), "points_per_s": round(points / seconds)}


def encoding(rows: np.ndarray) -> dict[str, Any]:
    """The CPU cost of a chunk before any Kafka client sees it."""
    prefix = message_prefix(CHANNEL, "SMAP")
    now = int(time.time() * 1000)
    started = time.perf_counter()
    checked = [(start, check_rows(CHANNEL, start, chunk, rows.shape[1])[0]) for start, chunk in chunks(rows)]
    checks_s = time.perf_counter() - started
    started = time.perf_counter()
    points = sum(len(encode_points(prefix, start, now, lists)) for start, lists in checked)
    encode_s = time.perf_counter() - started
    return {
        "check_rows": rate(points, checks_s),
        "encode_points": rate(points, encode_s),
        "check_and_encode": rate(points, checks_s + encode_s),
        "bytes_per_point": round(np.mean([len(p) for p in encode_points(prefix, 0, now, checked[0][1])])),
    }


def send_only(settings: Settings, topic: str, rows: np.ndarray, codec: str) -> dict[str, Any] | None:
    """Pre-encoded records through the client alone: its per-record cost and the codec's."""
    module = KAFKA_PYTHON_CODECS[codec]
    if settings.kafka.producer_client == "kafka-python" and module and not importlib.util.find_spec(module):
        return None
    prefix = message_prefix(CHANNEL, "SMAP")
    now = int(time.time() * 1000)
    payloads = [
        encode_points(prefix, start, now, check_rows(CHANNEL, start, c, rows.shape[1])[0])
        for start, c in chunks(rows)
    ]
    key = CHANNEL.encode()
    stats = PublisherStats()
    delivery = stats.channel(CHANNEL)
    tuning = replace(FAST_TUNING, compression=codec)
    client = open_client(settings, tuning, codec, ConnectPolicy(), "bench-producer")
    try:
        partitions = client.partitions(topic)
        partition = partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]
        started = time.perf_counter()
        for chunk in payloads:
            while client.handed - stats.sent - stats.errors > tuning.max_in_flight_points:
                client.wait(0.005)
            client.send(topic, partition, key, chunk, now, delivery)
        handed_s = time.perf_counter() - started
        if not client.flush(60) or stats.errors:
            raise RuntimeError(f"send_only {codec}: {stats.errors} failed, {delivery.first_error}")
        elapsed = time.perf_counter() - started
    finally:
        client.close(5)
    return {**rate(stats.sent, elapsed), "handed_s": round(handed_s, 3), "load_1m": load_average()[0]}


def publish(
    settings: Settings, registry: ChannelRegistry, rows: np.ndarray, tuning: ProducerTuning
) -> dict[str, Any]:
    """``publish_batch`` (checks, encoding, send) of P-1 ``REPEATS`` times, until acknowledged."""
    with TelemetryPublisher(settings, registry, tuning=tuning) as publisher:
        publisher.prepare([CHANNEL])
        started = time.perf_counter()
        for start, chunk in chunks(rows):
            publisher.publish_batch(CHANNEL, start, chunk)
        publisher.flush()
        elapsed = time.perf_counter() - started
    return {**rate(publisher.stats.channel(CHANNEL).sent, elapsed), "load_1m": load_average()[0]}


def replay(settings: Settings, registry_file: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """``tmstream replay --max`` as a subprocess: the command's wall time and its own summary."""
    command = [sys.executable, "-m", "tmstream", "--environment", settings.environment]
    command += ["replay", "--max", "--json", "--registry", str(registry_file)]
    environment = {
        **os.environ,
        "TMSTREAM_KAFKA_PRODUCER_CLIENT": settings.kafka.producer_client,
        **(env or {}),
    }
    load = load_average()[0]
    started = time.perf_counter()
    result = subprocess.run(
        command, capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=900, env=environment
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"replay failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    summary = json.loads(result.stdout)
    return {
        "channels": len(summary["points"]),
        "points": summary["total_points"],
        "wall_s": round(wall, 2),
        "replay_s": summary["elapsed_s"],
        "points_per_s": summary["points_per_s"],
        "load_1m_before": load,
        "load_1m_after": load_average()[0],
    }


def fleet_data(folder: Path, run_id: str) -> tuple[Path, Callable[[str], Path]]:
    """A synthetic fleet's data folder and, per client, a registry putting it on one shared topic."""
    data = folder / "fleet"
    spec = SynthSpec(channels=FLEET, train_rows=8, test_rows=FLEET_ROWS, features=25, anomalies_per_channel=1)
    names = write_synthetic(data, spec)

    def registry_for(tag: str) -> Path:
        path = folder / f"fleet-{tag}.yaml"
        entries = {
            name: {"spacecraft": "SYNTH", "features": 25, "topic": f"bench.{run_id}.fleet.{tag}"}
            for name in names
        }
        path.write_text(yaml.safe_dump({"discover": False, "channels": entries}))
        return path

    return data, registry_for


def consume_split(settings: Settings, run_id: str, expected: int) -> dict[str, Any]:
    """The replayed split read back and decoded, as the worker consumes it but without scoring."""
    with admin_client(settings) as admin:
        split = re.compile(rf"bench\.{run_id}\.[^.]+$")  # the default client's split topics only
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
    return {**rate(points, elapsed), "load_1m": load_average()[0]}


def delete_topics(settings: Settings, run_id: str) -> None:
    with admin_client(settings) as admin:
        mine = [name for name in admin.list_topics() if name.startswith(f"bench.{run_id}.")]
        if mine:
            admin.delete_topics(mine)


@contextmanager
def bench_topics(settings: Settings, run_id: str) -> Iterator[Path]:
    try:
        with tempfile.TemporaryDirectory() as folder:
            yield Path(folder)
    finally:
        delete_topics(settings, run_id)


def run() -> dict[str, Any]:
    with testing_stack() as settings:
        return measure(settings)


def measure(settings: Settings) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]
    rows = np.load(settings.data_dir / "test" / f"{CHANNEL}.npy")
    results: dict[str, Any] = {
        "environment": settings.environment,
        "bootstrap": settings.kafka.bootstrap_servers,
        "cpu_count": os.cpu_count(),
        "load_average_start": load_average(),
        "tuning": asdict(FAST_TUNING),
        "single_channel": f"{CHANNEL}, {rows.shape[1]} values, {REPEATS} x {len(rows)} points",
        "encoding": encoding(rows),
        "clients": {},
    }
    with bench_topics(settings, run_id) as folder:
        topic = f"bench.{run_id}.single.{CHANNEL}"
        single = folder / "single.yaml"
        single.write_text(yaml.safe_dump({"channels": {CHANNEL: {"topic": topic}}}))
        registry = ChannelRegistry(single, settings.data_dir)
        ensure_topics(settings, [topic])
        fleet = fleet_data(folder, run_id) if FLEET else None
        for name in clients():
            client = with_client(settings, name)
            tag = "" if name == "kafka-python" else "confluent."
            split = folder / f"split-{name}.yaml"
            split.write_text(yaml.safe_dump({"topic_pattern": f"bench.{run_id}.{tag}{{channel}}"}))
            measured: dict[str, Any] = {
                "send_only": {codec: send_only(client, topic, rows, codec) for codec in CODECS},
                "batching": {
                    label: publish(
                        client, registry, rows, replace(FAST_TUNING, linger_ms=linger, batch_size=size)
                    )
                    for label, (linger, size) in BATCHING.items()
                },
                "single_channel": publish(client, registry, rows, FAST_TUNING),
                "full_split": replay(client, split),
            }
            if fleet is not None:
                data, registry_for = fleet
                environment = {
                    "TMSTREAM_DATA_DIR": str(data),
                    "TMSTREAM_KAFKA_TOPIC_PARTITIONS": str(FLEET_PARTITIONS),
                }
                measured["fleet"] = replay(client, registry_for(name), environment)
            measured["single_channel_points_per_s"] = measured["single_channel"]["points_per_s"]
            measured["meets_points_per_s_target"] = (
                measured["single_channel_points_per_s"] >= TARGET_POINTS_PER_S
            )
            measured["meets_full_split_target"] = measured["full_split"]["wall_s"] <= TARGET_FULL_SPLIT_S
            results["clients"][name] = measured
        results["consumer"] = consume_split(
            settings, run_id, results["clients"]["kafka-python"]["full_split"]["points"]
        )
    if len(results["clients"]) > 1:
        default, other = (results["clients"][n] for n in ("kafka-python", "confluent-kafka"))
        results["confluent_vs_kafka_python"] = {
            "single_channel": round(
                other["single_channel_points_per_s"] / default["single_channel_points_per_s"], 2
            ),
            "full_split_wall": round(default["full_split"]["wall_s"] / other["full_split"]["wall_s"], 2),
        }
    results["load_average_end"] = load_average()
    return results
