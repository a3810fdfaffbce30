"""Every command given wrong arguments, missing data or an unreachable service: one line, non-zero.

Unreachable services are addresses where nothing listens (port 1 on loopback), so each case ends
within the commands' bounded retries. The data folder is the synthetic set (tests/conftest.py), so
a case fails for its own reason, not for a missing NASA folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

NO_KAFKA = {"TMSTREAM_KAFKA_BOOTSTRAP": "127.0.0.1:1"}
NO_REDIS = {"TMSTREAM_REDIS_URL": "redis://127.0.0.1:1/0"}

CASES = [
    ("replay-unknown-channel", ["replay", "--channels", "NOPE-1"], {}, "unknown channel(s) NOPE-1"),
    ("replay-bad-rate", ["replay", "--channels", "P-1", "--rate", "-5"], {}, "rate"),
    ("replay-no-broker", ["replay", "--channels", "P-1", "--max"], NO_KAFKA, "127.0.0.1:1"),
    ("topics-no-broker", ["topics", "create"], NO_KAFKA, "127.0.0.1:1"),
    ("worker-no-broker", ["worker"], NO_KAFKA, "127.0.0.1:1"),
    ("anomalies-no-redis", ["anomalies", "list"], NO_REDIS, "127.0.0.1:1"),
    ("reconcile-no-broker", ["anomalies", "reconcile"], NO_KAFKA, "127.0.0.1:1"),
    ("predict-unknown-channel", ["predict", "--channel", "NOPE-1", "--out", "/tmp/x.npy"], {}, "NOPE-1"),
    ("predict-no-target", ["predict", "--channel", "P-1"], {}, "--out"),
    ("train-two-selections", ["train", "--channel", "P-1", "--spacecraft", "SMAP"], {}, "exactly one"),
    ("evaluate-unknown-spacecraft", ["evaluate", "--spacecraft", "JUNO"], {}, "JUNO"),
    ("models-promote-missing-version", ["models", "promote", "P-1", "999"], {}, "999"),
    ("stack-bad-provider", ["stack", "up", "--provider", "podman"], {}, "podman"),
    ("data-info-missing-folder", ["--data-dir", "/nonexistent/nasa", "data", "info"], {}, "/nonexistent"),
    (
        "channels-add-bad-width",
        ["channels", "add", "--channel", "X-1", "--spacecraft", "SMAP", "--features", "0"],
        {},
        "--features",
    ),
    ("demo-unknown-setting", ["demo"], {"TMSTREAM_WORKER_MAX_BATCH": "0"}, "worker.max_batch"),
    ("bench-unknown", ["bench", "no-such-benchmark"], {}, "no-such-benchmark"),
]


@pytest.mark.parametrize(("args", "env", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_command_fails_with_one_clear_line(
    tmp_path: Path, synth_dir: Path, args: list[str], env: dict[str, str], expected: str
) -> None:
    folders = {"TMSTREAM_STATE_DIR": str(tmp_path / "state"), "TMSTREAM_DATA_DIR": str(synth_dir)}
    full_env = {**os.environ, **folders, **env}
    result = subprocess.run(
        [sys.executable, "-m", "tmstream", *args], capture_output=True, text=True, env=full_env, timeout=120
    )
    assert result.returncode != 0, result.stdout
    output = result.stderr + result.stdout
    assert "Traceback" not in output
    assert expected in output, output[-1500:]
