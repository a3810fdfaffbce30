"""Replay against the real broker, checked with kcat: every row, in order, exactly once across a resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from producers.dataset import TelemanomDataset
from tests.integration.producers.kcat import kcat_records
from tmstream.ground.settings import Settings

P1_ROWS = 8505


def tmstream(nasa_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "tmstream", "-e", "testing", "--data-dir", str(nasa_dir), *args]


def start_replay(command: list[str]) -> tuple[subprocess.Popen[str], list[str]]:
    """A replay subprocess, returned once it has its signal handlers and topics in place."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = threading.Event()
    stderr_lines: list[str] = []

    def watch() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            stderr_lines.append(line)
            if line.startswith("replay: starting"):
                started.set()

    threading.Thread(target=watch, daemon=True).start()
    if not started.wait(60):
        process.kill()
        raise AssertionError("".join(stderr_lines))
    return process, stderr_lines


def test_replay_puts_every_p1_row_on_its_topic_in_order(
    stack: Settings,
    nasa: TelemanomDataset,
    nasa_dir: Path,
    registry_file: Path,
    topic_name: str,
    producer_client: str,
) -> None:
    result = subprocess.run(
        tmstream(
            nasa_dir, "replay", "--channels", "P-1", "--max", "--registry", str(registry_file), "--json"
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["points"] == {"P-1": P1_ROWS}
    assert summary["rejected"] == [] and summary["errors"] == {"P-1": 0}

    records = kcat_records(stack, f"{topic_name}.P-1")
    assert [message["index"] for _, message in records] == list(range(P1_ROWS))
    assert {key for key, _ in records} == {"P-1"}
    assert {(m["schema"], m["channel"], m["spacecraft"]) for _, m in records} == {
        ("tmstream.telemetry.v1", "P-1", "SMAP")
    }
    sent = np.array([message["values"] for _, message in records])
    np.testing.assert_array_equal(sent, nasa.load("P-1"))


def test_interrupted_replay_resumes_without_gaps_or_repeats(
    stack: Settings, nasa_dir: Path, registry_file: Path, topic_name: str, producer_client: str
) -> None:
    command = ["replay", "--channels", "P-1", "--registry", str(registry_file), "--json"]
    first, stderr_lines = start_replay(tmstream(nasa_dir, *command, "--rate", "2500"))
    target = stack.state_dir / "prometheus" / "targets" / f"producer-replay-{first.pid}.json"
    assert target.is_file(), "the replay's /metrics endpoint is announced to Prometheus"
    time.sleep(1.2)
    first.send_signal(signal.SIGINT)
    out, _ = first.communicate(timeout=60)
    assert first.returncode == 128 + signal.SIGINT, "".join(stderr_lines)
    interrupted = json.loads(out)
    assert interrupted["stopped_by"] == "SIGINT"
    assert 0 < interrupted["points"]["P-1"] < P1_ROWS
    assert not target.exists()
    on_topic = kcat_records(stack, f"{topic_name}.P-1")
    assert len(on_topic) == interrupted["points"]["P-1"], "in-flight points were flushed before exiting"

    second = subprocess.run(
        tmstream(nasa_dir, *command, "--max", "--resume"), capture_output=True, text=True, timeout=120
    )
    assert second.returncode == 0, second.stderr
    resumed = json.loads(second.stdout)
    assert resumed["start_index"] == {"P-1": interrupted["points"]["P-1"]}
    assert interrupted["points"]["P-1"] + resumed["points"]["P-1"] == P1_ROWS

    indices = [message["index"] for _, message in kcat_records(stack, f"{topic_name}.P-1")]
    assert indices == list(range(P1_ROWS))


def test_resume_of_a_finished_channel_sends_nothing(
    stack: Settings, nasa_dir: Path, registry_file: Path, topic_name: str
) -> None:
    command = [
        "replay",
        "--channels",
        "P-1",
        "--from-index",
        "8400",
        "--registry",
        str(registry_file),
        "--json",
    ]
    assert subprocess.run(tmstream(nasa_dir, *command), capture_output=True, timeout=120).returncode == 0
    again = subprocess.run(
        tmstream(nasa_dir, *command, "--resume"), capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["skipped"] == {"P-1": "start index 8505 is past the last row 8504"}
    assert [m["index"] for _, m in kcat_records(stack, f"{topic_name}.P-1")] == list(range(8400, P1_ROWS))


def test_unreachable_broker_is_one_line_and_non_zero_in_bounded_time(nasa_dir: Path) -> None:
    started = time.monotonic()
    result = subprocess.run(
        tmstream(nasa_dir, "replay", "--channels", "P-1"),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TMSTREAM_KAFKA_BOOTSTRAP": "127.0.0.1:9"},
    )
    assert result.returncode == 3
    assert time.monotonic() - started < 30
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: cannot reach Kafka at 127.0.0.1:9")


def test_rate_paced_replay_stamps_wall_clock_event_times(
    stack: Settings, nasa_dir: Path, registry_file: Path, topic_name: str
) -> None:
    command = ["replay", "--channels", "P-1", "--from-index", "8205", "--rate", "400"]
    result = subprocess.run(
        tmstream(nasa_dir, *command, "--registry", str(registry_file), "--json"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    times = [m["event_time_ms"] for _, m in kcat_records(stack, f"{topic_name}.P-1")]
    assert len(times) == 300
    assert times == sorted(times)
    assert 500 <= times[-1] - times[0] <= 2500, "300 points at 400/s take about 0.75 s"


def test_loop_wraps_to_row_zero_and_sigterm_stops_cleanly(
    stack: Settings, nasa_dir: Path, registry_file: Path, topic_name: str
) -> None:
    command = ["replay", "--channels", "P-1", "--from-index", "8500", "--loop", "--rate", "200"]
    process, stderr_lines = start_replay(
        tmstream(nasa_dir, *command, "--registry", str(registry_file), "--json")
    )
    deadline = time.monotonic() + 60
    records: list[tuple[str, dict[str, object]]] = []
    while len(records) < 20 and time.monotonic() < deadline:
        time.sleep(0.5)
        records = kcat_records(stack, f"{topic_name}.P-1", limit=20)
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, "".join(stderr_lines)
    summary = json.loads(out)
    assert summary["stopped_by"] == "SIGTERM"
    indices = [m["index"] for _, m in kcat_records(stack, f"{topic_name}.P-1")]
    assert len(indices) == summary["points"]["P-1"] >= 20
    assert indices[:8] == [8500, 8501, 8502, 8503, 8504, 0, 1, 2]
    assert indices[5:] == list(range(len(indices) - 5))


def test_slice_then_resume_sends_every_row_once(
    stack: Settings, nasa_dir: Path, registry_file: Path, topic_name: str
) -> None:
    command = ["replay", "--channels", "P-1", "--registry", str(registry_file), "--json"]
    first = subprocess.run(
        tmstream(nasa_dir, *command, "--from-index", "8000", "--until-index", "8300"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["points"] == {"P-1": 300}
    rest = subprocess.run(
        tmstream(nasa_dir, *command, "--resume"), capture_output=True, text=True, timeout=120
    )
    assert rest.returncode == 0, rest.stderr
    assert json.loads(rest.stdout)["start_index"] == {"P-1": 8300}
    assert [m["index"] for _, m in kcat_records(stack, f"{topic_name}.P-1")] == list(range(8000, P1_ROWS))

    empty = subprocess.run(
        tmstream(nasa_dir, *command, "--from-index", "10", "--until-index", "10"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert empty.returncode != 0
    assert "until-index must be above from-index 10, got 10" in empty.stderr
