"""Every user error is one clear line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tmstream.cli import bench
from tmstream.ground.exceptions import TmstreamError

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
        (["--log-level", "loud", "data", "info"], {}, "log_level='LOUD': Input should be 'DEBUG', 'INFO'"),
        (["data", "info"], {"TMSTREAM_CONFIG_DIR": "/nonexistent/config"}, "default.yaml not found"),
    ],
)
def test_one_line_no_traceback(args: list[str], env: dict[str, str], expected: str) -> None:
    result = run(*args, env=env)
    assert result.returncode != 0
    assert expected in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_broken_yaml_stops_the_command_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "default.yaml").write_text("kafka:\n  port: [9092\n")
    result = run("stack", "status", env={"TMSTREAM_CONFIG_DIR": str(tmp_path)})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "default.yaml is not valid YAML" in line and "line 3" in line


def test_bench_without_a_checkout_says_where_benchmarks_run(monkeypatch: pytest.MonkeyPatch) -> None:
    cli = typer.Typer()
    cli.command("version")(lambda: None)
    monkeypatch.setattr(bench, "FOLDER", None)
    bench.add_to(cli)
    result = CliRunner().invoke(cli, ["bench", "producer", "--channels", "3"])
    assert isinstance(result.exception, TmstreamError)
    assert str(result.exception) == "benchmarks run from a source checkout (benchmarks/ is not installed)"


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


def test_a_missing_extra_names_its_install_command(tmp_path: Path) -> None:
    """matplotlib is the report extra: without it `tmstream report` says how to get it, in one line."""
    code = (
        "import sys; sys.modules['matplotlib'] = None; "
        f"sys.argv = ['tmstream', 'report', '--channel', 'P-1', '--out', {str(tmp_path)!r}]; "
        "from tmstream.cli import main; main()"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (
        result.stderr.strip()
        == "error: this command needs matplotlib: pip install 'telemanom-stream[report]'"
    )
