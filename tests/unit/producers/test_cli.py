"""Producer commands fail with one clear line before touching Kafka when the request is wrong."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

TMSTREAM = [sys.executable, "-m", "tmstream", "-e", "testing"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TMSTREAM, *args], capture_output=True, text=True, timeout=60)


def test_unknown_channel_lists_known_ones(synth_dir: Path) -> None:
    result = run("--data-dir", str(synth_dir), "replay", "--channels", "P-1,NOPE-7")
    assert result.returncode == 2
    assert "unknown channel(s) NOPE-7; known: P-1, S-1, E-1" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "flags", [["--rate", "5", "--max"], ["--rate", "5", "--speedup", "2"], ["--split", "validation"]]
)
def test_conflicting_or_invalid_replay_flags(synth_dir: Path, flags: list[str]) -> None:
    result = run("--data-dir", str(synth_dir), "replay", "--channels", "P-1", *flags)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_channels_add_rejects_reserved_topics(tmp_path: Path) -> None:
    registry = tmp_path / "channels.yaml"
    result = run(
        "channels", "add", "--channel", "X-1", "--spacecraft", "SMAP", "--features", "25",
        "--topic", "telemetry.deadletter", "--registry", str(registry),
    )  # fmt: skip
    assert result.returncode == 2
    assert "reserved" in result.stderr
    assert not registry.exists()
