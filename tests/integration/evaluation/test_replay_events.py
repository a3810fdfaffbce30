"""A real replay's anomaly events, scored by `tmstream evaluate --events`, equal the offline stream.

Replay → Kafka → worker → anomalies topic and Redis for two short MSL channels, then the closed
events from the topic and from Redis are scored with the same code as `evaluate --source stream`
over the same model's predictions (`--alias reference`, the engine the worker runs).

Known difference: the worker predicts every row it can (rows - l_s points), the offline stream only
the rows the 2018 y_hat covers (rows - l_s - n_predictions). On these channels the 10 extra rows
change no detection, so the two are asserted equal.
"""

from __future__ import annotations

import json
import time

import pytest
from typer.testing import CliRunner

from tmstream.cli import app

CHANNELS = ("D-14", "T-12")
SCORED = {"D-14": 2625 - 250, "T-12": 2430 - 250}


def evaluate(pipeline, *args: str) -> dict:
    """`tmstream evaluate --source stream` in this process, with the pipeline's topics and Redis db."""
    command = ["evaluate", "--source", "stream", "--channels", ",".join(CHANNELS), "--json", "--no-mlflow"]
    result = CliRunner().invoke(app, [*command, *args], env=pipeline.env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def ranges(report: dict) -> dict[str, list[list[int]]]:
    return {c["channel"]: [d[:2] for d in c["detections"]] for c in report["channels"]}


def closed_on_topic(pipeline) -> int:
    return sum(1 for event in pipeline.topic_events() if event["status"] == "closed")


def test_replayed_events_score_like_the_offline_stream(pipeline) -> None:
    pipeline.start_worker()
    pipeline.wait_ready()
    replayed = pipeline.tmstream("replay", "--channels", ",".join(CHANNELS), "--max")
    assert replayed.returncode == 0, replayed.stderr
    offline = evaluate(pipeline, "--alias", "reference")  # while the worker scores the replay
    expected_closed = sum(len(found) for found in ranges(offline).values())
    assert expected_closed > 0
    total = sum(SCORED.values())
    pipeline.wait_for(
        lambda: pipeline.metric("w1", "tmstream_points_scored_total") >= total, 60, f"{total} points scored"
    )
    pipeline.wait_for(lambda: closed_on_topic(pipeline) >= expected_closed, 30, "closed events")
    # the tails are decided once a channel is idle (testing: 4 s); let a late extra event show up
    time.sleep(pipeline.settings.worker.idle_close_s + 1)

    for origin in ("kafka", "redis"):
        recorded = evaluate(pipeline, "--events", origin)
        assert recorded["detector"] == f"stream-{origin}"
        assert ranges(recorded) == ranges(offline), origin
        assert recorded["total"] == offline["total"], origin
        for ours, theirs in zip(recorded["channels"], offline["channels"], strict=True):
            scores = [d[2] for d in ours["detections"]]
            assert scores == pytest.approx([d[2] for d in theirs["detections"]], rel=1e-4)
