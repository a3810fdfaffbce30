"""`tmstream topics` and `tmstream channels` on the real broker, through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from tmstream.ground.settings import Settings


def tmstream(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tmstream", "-e", "testing", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_topics_create_is_idempotent_and_listed(stack: Settings, tmp_path: Path, topic_name: str) -> None:
    registry = tmp_path / "channels.yaml"
    registry.write_text(
        yaml.safe_dump(
            {
                "discover": False,
                "channels": {"Z-1": {"spacecraft": "SMAP", "features": 25, "topic": topic_name}},
            }
        )
    )
    first = tmstream("topics", "create", "--registry", str(registry), "--json")
    assert first.returncode == 0, first.stderr
    statuses = {row["topic"]: row["status"] for row in json.loads(first.stdout)["topics"]}
    assert statuses[topic_name] == "created"
    assert set(statuses) == {topic_name, "anomalies", "telemetry.deadletter"}
    second = tmstream("topics", "create", "--registry", str(registry), "--json")
    assert {row["status"] for row in json.loads(second.stdout)["topics"]} == {"exists"}

    listed = tmstream("topics", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["topic"]: row for row in json.loads(listed.stdout)["topics"]}
    assert rows[topic_name] == {
        "topic": topic_name,
        "partitions": stack.kafka.topic_partitions,
        "replication_factor": 1,
        "retention_ms": stack.kafka.retention_ms,
    }


def test_channels_add_then_list(stack: Settings, tmp_path: Path, topic_name: str) -> None:
    registry = tmp_path / "channels.yaml"
    added = tmstream(
        "channels", "add", "--channel", "X-1", "--spacecraft", "SMAP", "--features", "25",
        "--topic", topic_name, "--registry", str(registry),
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "topic created" in added.stdout
    listed = tmstream("channels", "list", "--registry", str(registry), "--json")
    assert listed.returncode == 0, listed.stderr
    channels = {row["channel"]: row for row in json.loads(listed.stdout)["channels"]}
    assert channels["X-1"]["topic"] == topic_name
    assert channels["X-1"]["features"] == 25 and channels["X-1"]["source"] == "registry"
    assert channels["P-1"]["topic"] == "telemetry.smap.P-1"
    assert set(channels["P-1"]) == {
        "channel", "spacecraft", "features", "topic", "source", "champion",
        "value_column", "subsystem", "units", "values",
    }  # fmt: skip
    assert channels["P-1"]["value_column"] == 0 and channels["P-1"]["values"] == "prescaled"
    assert channels["X-1"]["champion"] in (False, None)
