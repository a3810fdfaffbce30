"""The local stack is the real thing: a kafka.Kafka JVM, redis-server and prometheus, read by kcat."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from tmstream.ground.redis import redis_client
from tmstream.ground.settings import Settings, load_settings
from tmstream.stack import LocalStack


def tmstream(state_dir: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "tmstream", "--state-dir", str(state_dir), *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **env},
    )


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie waiting for its (re)parent to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def roundtrip(settings: Settings, count: int = 200) -> list[bytes]:
    topic = f"test.{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(**settings.kafka.client_options())
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    admin.close()
    producer = KafkaProducer(**settings.kafka.client_options(), acks="all")
    for i in range(count):
        producer.send(topic, key=b"P-1", value=f"point-{i}".encode())
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(
        topic, **settings.kafka.client_options(), auto_offset_reset="earliest", consumer_timeout_ms=10000
    )
    values = [record.value for record in consumer]
    consumer.close()
    kcat = subprocess.run(
        ["kcat", "-C", "-b", settings.kafka.bootstrap_servers, "-t", topic, "-e", "-q", "-f", "%k=%s\n"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert kcat.stdout.splitlines() == [f"P-1=point-{i}" for i in range(count)]
    return values


@pytest.mark.parametrize(
    "kafka_version",
    [None, pytest.param("4.1.1", marks=pytest.mark.slow, id="kafka-4.x")],
    ids=lambda v: v or "configured",
)
def test_lifecycle_up_status_kcat_down(tmp_path: Path, kafka_version: str | None) -> None:
    """On private ports: up starts four real processes, up again changes nothing, down leaves none."""
    env = {
        "TMSTREAM_KAFKA_PORT": "39092",
        "TMSTREAM_KAFKA_CONTROLLER_PORT": "39093",
        "TMSTREAM_REDIS_PORT": "36379",
        "TMSTREAM_PROMETHEUS_PORT": "39090",
        "TMSTREAM_ALERTMANAGER_PORT": "39094",
    }
    if kafka_version:
        env["TMSTREAM_KAFKA_VERSION"] = kafka_version
    state = tmp_path / "state"
    try:
        assert tmstream(state, "stack", "up", env=env).returncode == 0
        status = tmstream(state, "stack", "status", "--json", env=env)
        assert status.returncode == 0, status.stderr
        services = {s["name"]: s for s in json.loads(status.stdout)}
        assert set(services) == {"kafka", "redis", "prometheus", "alertmanager"}
        assert all(s["healthy"] for s in services.values())
        cmdline = Path(f"/proc/{services['kafka']['pid']}/cmdline").read_bytes().split(b"\0")
        assert b"kafka.Kafka" in cmdline and cmdline[0].endswith(b"java")
        metadata = subprocess.run(
            ["kcat", "-L", "-b", "127.0.0.1:39092"], capture_output=True, text=True, timeout=30
        )
        assert "broker 1 at 127.0.0.1:39092" in metadata.stdout

        settings = load_settings({"state_dir": str(state), "kafka": {"port": 39092}})
        assert len(roundtrip(settings, 50)) == 50

        again = tmstream(state, "stack", "status", "--json", env=env)
        assert tmstream(state, "stack", "up", env=env).returncode == 0
        pids = {s["name"]: s["pid"] for s in json.loads(again.stdout)}
        assert pids == {s["name"]: s["pid"] for s in json.loads(status.stdout)}
    finally:
        down = tmstream(state, "stack", "down", env=env)
    assert down.returncode == 0
    assert not [pid for pid in pids.values() if alive(pid)]
    after = tmstream(state, "stack", "status", "--json", env=env)
    assert after.returncode == 1
    assert not any(s["healthy"] for s in json.loads(after.stdout))


def test_produce_and_consume_through_the_broker(stack: Settings) -> None:
    values = roundtrip(stack, 500)
    assert values == [f"point-{i}".encode() for i in range(500)]


def test_redis_is_real(stack: Settings) -> None:
    client = redis_client(stack)
    key = f"test:{uuid.uuid4().hex}"
    client.xadd(key, {"event_id": "a"})
    client.xadd(key, {"event_id": "b"})
    assert [fields[b"event_id"] for _, fields in client.xrange(key)] == [b"a", b"b"]
    assert client.info("server")["redis_version"]
    client.delete(key)


def test_status_of_session_stack(stack: Settings) -> None:
    statuses = LocalStack(stack).status()
    assert [s.name for s in statuses if s.healthy] == ["kafka", "redis", "prometheus"]
