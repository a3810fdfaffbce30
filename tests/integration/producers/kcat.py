"""kcat (librdkafka) as an independent reader of what the producers wrote."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tmstream.ground.settings import Settings


def kcat_records(
    settings: Settings, topic: str, limit: int | None = None
) -> list[tuple[str, dict[str, object]]]:
    """(key, message) of the records on ``topic`` (the first ``limit``), read by kcat (librdkafka)."""
    if not shutil.which("kcat"):
        pytest.skip("kcat is not installed")
    result = subprocess.run(
        ["kcat", "-C", "-b", settings.kafka.bootstrap_servers, "-t", topic, "-e", "-q", "-f", "%k\t%s\n"]
        + (["-c", str(limit)] if limit else []),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    records = []
    for line in result.stdout.splitlines():
        key, _, value = line.partition("\t")
        records.append((key, json.loads(value)))
    return records
