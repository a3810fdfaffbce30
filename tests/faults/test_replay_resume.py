"""A replay killed with SIGKILL mid-channel and run again with ``--resume``.

No flush, no summary: whatever the killed producer had acknowledged is on the topic, and
``--resume`` continues after the last index found there. The topic must then hold every row
exactly once, in order, and the worker must score it as if the replay had never stopped.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.faults.pipeline_checks import (
    expected_emissions,
    only_channels,
    paced_replay,
    rows_of,
    settled_emissions,
)

pytestmark = pytest.mark.fault
CHANNEL, SPACECRAFT = "D-14", "MSL"


def topic_indices(pipeline) -> list[int]:
    command = ["kcat", "-C", "-b", pipeline.settings.kafka.bootstrap_servers,
               "-t", pipeline.topic(CHANNEL, SPACECRAFT), "-e", "-q", "-f", "%s\n"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    return [json.loads(line)["index"] for line in result.stdout.splitlines() if line.strip()]


def test_killed_replay_resumes_without_gap_or_duplicate(pipeline) -> None:
    settings = pipeline.settings
    rows = len(rows_of(settings, CHANNEL))
    only_channels(pipeline.folder / "config", pipeline.run_id, {CHANNEL: SPACECRAFT}, {CHANNEL: 55})
    expected = expected_emissions(settings, CHANNEL, SPACECRAFT)
    # The pause between the kill and the resumed replay must not look like the end of the stream.
    pipeline.env["TMSTREAM_WORKER_IDLE_CLOSE_S"] = "30"
    pipeline.start_worker("w1")
    pipeline.wait_ready("w1")

    with paced_replay(pipeline, [CHANNEL], 150) as producer:
        pipeline.wait_for(
            lambda: pipeline.metric("w1", "tmstream_points_consumed_total") >= 500, 90, "500 points consumed"
        )
        producer.kill()
    delivered = len(topic_indices(pipeline))
    assert 500 <= delivered < rows, "the kill landed mid-replay"

    resumed = pipeline.tmstream("replay", "--channels", CHANNEL, "--resume", "--max", "--json")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["start_index"] == {CHANNEL: delivered}
    assert summary["points"] == {CHANNEL: rows - delivered}
    assert topic_indices(pipeline) == list(range(rows))

    figures = settled_emissions(pipeline, expected, 120)
    assert pipeline.metric("w1", "tmstream_points_consumed_total") == rows
    assert pipeline.metric("w1", "tmstream_points_scored_total") == rows - settings.model.l_s
    assert pipeline.metric("w1", "tmstream_dead_letters_total") == 0
    print(f"replay-resume: {figures}, delivered before kill {delivered}, resumed {rows - delivered}")
