"""The pipeline over SASL/SCRAM-SHA-512 and an ACL-protected Redis, secrets read from files.

A private stack (the session's broker is plaintext and shared): the local Kafka started with
``kafka.local_sasl``, Redis with an ACL user. Replay, worker (Faust), admin and the alert
consumer all authenticate; clients without credentials are refused; the secrets appear in no log.
"""

from __future__ import annotations

import json
import stat
import subprocess
import uuid
from pathlib import Path

import pytest
import redis
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from tests.faults.pipeline_checks import only_channels, rows_of
from tests.faults.private_services import private_kafka, private_redis

CHANNEL, SPACECRAFT = "D-14", "MSL"
USER = "tmstream-worker"


def secret_file(folder: Path, name: str) -> tuple[str, Path]:
    secret = f"{name}-{uuid.uuid4().hex}"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.touch(mode=0o600)
    path.write_text(secret + "\n")
    return secret, path


def kcat(bootstrap: str, *args: str, sasl: tuple[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    auth = []
    if sasl:
        auth = ["-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanisms=SCRAM-SHA-512",
                "-X", f"sasl.username={sasl[0]}", "-X", f"sasl.password={sasl[1]}"]  # fmt: skip
    return subprocess.run(["kcat", "-b", bootstrap, *auth, *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def secure(pipeline, tmp_path):
    """The pipeline pointed at a private SASL broker and an ACL Redis; yields the two secrets."""
    kafka_secret, kafka_file = secret_file(tmp_path / "secrets", "kafka")
    redis_secret, redis_file = secret_file(tmp_path / "secrets", "redis")
    sasl = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512", "username": USER}
    with (
        private_kafka(tmp_path / "private", local_sasl=True, password_file=str(kafka_file), **sasl) as kafka,
        private_redis(tmp_path / "private", username=USER, password_file=str(redis_file)) as store,
    ):
        pipeline.env.update(
            {
                "TMSTREAM_KAFKA_PORT": str(kafka.settings.kafka.port),
                "TMSTREAM_KAFKA_CONTROLLER_PORT": str(kafka.settings.kafka.controller_port),
                "TMSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "TMSTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                "TMSTREAM_KAFKA_USERNAME": USER,
                "TMSTREAM_KAFKA_PASSWORD_FILE": str(kafka_file),
                "TMSTREAM_REDIS_URL": f"redis://127.0.0.1:{store.settings.redis.port}/0",
                "TMSTREAM_REDIS_USERNAME": USER,
                "TMSTREAM_REDIS_PASSWORD_FILE": str(redis_file),
                "TMSTREAM_LOG_LEVEL": "DEBUG",  # the most a log can say, and still no secret in it
            }
        )
        yield kafka, store, kafka_secret, redis_secret


def test_pipeline_over_sasl_and_redis_acl_refuses_strangers_and_logs_no_secret(pipeline, secure) -> None:
    kafka, store, kafka_secret, redis_secret = secure
    settings = pipeline.settings
    assert settings.kafka.password is not None and settings.kafka.password.get_secret_value() == kafka_secret
    bootstrap = settings.kafka.bootstrap_servers
    only_channels(pipeline.folder / "config", pipeline.run_id, {CHANNEL: SPACECRAFT}, {CHANNEL: 55})

    pipeline.start_worker("w1")
    pipeline.wait_ready("w1")
    replay = pipeline.tmstream("replay", "--channels", CHANNEL, "--max", "--json")
    assert replay.returncode == 0, replay.stderr
    scored = len(rows_of(settings, CHANNEL)) - settings.model.l_s
    pipeline.wait_for(lambda: pipeline.metric("w1", "tmstream_points_scored_total") == scored, 180, "scored")
    pipeline.wait_for(lambda: len(pipeline.redis_events()) > 0, 60, "an anomaly event in Redis")

    anomalies = settings.kafka.anomalies_topic
    on_topic = kcat(bootstrap, "-C", "-t", anomalies, "-e", "-q", sasl=(USER, kafka_secret))
    assert on_topic.returncode == 0 and len(on_topic.stdout.splitlines()) == len(pipeline.redis_events())
    tail = pipeline.tmstream("alerts", "tail", "--from-beginning", "--timeout", "10", "--json")
    assert tail.returncode == 0, tail.stderr
    assert {json.loads(line)["event_id"] for line in tail.stdout.splitlines()} == {
        e["event_id"] for e in pipeline.redis_events()
    }

    # Strangers: no credentials, or a wrong password, on Kafka and on Redis.
    anonymous = kcat(bootstrap, "-L", "-m", "10")
    assert anonymous.returncode != 0 and "broker 1 at" not in anonymous.stdout
    wrong = kcat(bootstrap, "-L", "-m", "10", sasl=(USER, "not-the-password"))
    assert wrong.returncode != 0 and "Authentication failed" in wrong.stderr
    with pytest.raises(KafkaError):
        KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000, bootstrap_timeout_ms=5000)
    port = store.settings.redis.port
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=port, socket_timeout=5).get("tmstream:anomalies")
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=port, username=USER, password="not-the-password", socket_timeout=5).ping()

    # The secrets: in no log or output; only in the two 0600 config files that must hold them.
    outputs = {
        "worker log": pipeline.log("w1"),
        "replay output": replay.stdout + replay.stderr,
        "alerts output": tail.stdout + tail.stderr,
        "kafka log": kafka.process.log_file.read_text(errors="replace"),
        "redis log": store.process.log_file.read_text(errors="replace"),
    }
    for name, text in outputs.items():
        assert text, f"{name} is empty: the check would prove nothing"
        assert kafka_secret not in text and redis_secret not in text, f"a secret in the {name}"
    for config in (kafka.process.folder / "server.properties", store.process.folder / "redis.conf"):
        assert stat.S_IMODE(config.stat().st_mode) == 0o600, config
    print(f"security: SASL pipeline scored {scored}, {len(pipeline.redis_events())} events; "
          f"anonymous kcat: {anonymous.stderr.strip().splitlines()[-1][:120]}")  # fmt: skip
