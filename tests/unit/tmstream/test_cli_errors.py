"""Every user error is one clear line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TMSTREAM = [sys.executable, "-m", "tmstream"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TMSTREAM, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=60
    )


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["data", "info"], {"TMSTREAM_KAFKA_SECURITY_PROTOCOL": "telnet"}, "kafka.security_protocol"),
        (["-e", "staging", "data", "info"], {}, "environment='staging'"),
        (["--data-dir", "/nonexistent/nasa", "data", "info"], {}, "/nonexistent/nasa"),
        (["stack", "status"], {"TMSTREAM_KAFKA_PORT": "99999"}, "kafka.port"),
        (["data", "synth"], {}, "--out"),
        (["no-such-command"], {}, "No such command"),
    ],
)
def test_one_line_no_traceback(args: list[str], env: dict[str, str], expected: str) -> None:
    result = run(*args, env=env)
    assert result.returncode != 0
    assert expected in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_missing_java_is_named(tmp_path: Path) -> None:
    """With no java on PATH, `stack up` says what is missing instead of failing obscurely."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    python_dir = Path(sys.executable).parent
    env = {
        "PATH": f"{bin_dir}:{python_dir}",
        "TMSTREAM_KAFKA_PORT": "39192",
        "TMSTREAM_KAFKA_CONTROLLER_PORT": "39193",
    }
    result = run("--state-dir", str(tmp_path / "state"), "stack", "up", env=env)
    assert result.returncode == 2
    assert "Java is not installed" in result.stderr
    assert "Traceback" not in result.stderr


def test_port_in_use_is_named(tmp_path: Path) -> None:
    import socket

    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        result = run(
            "--state-dir",
            str(tmp_path / "state"),
            "stack",
            "up",
            env={"TMSTREAM_KAFKA_PORT": str(port), "TMSTREAM_KAFKA_CONTROLLER_PORT": "39293"},
        )
    assert result.returncode == 2
    assert f"port {port} is already in use" in result.stderr
    assert "Traceback" not in result.stderr
