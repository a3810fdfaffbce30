"""Replay → Kafka → Faust worker → anomalies topic and Redis, on the real stack.

Oracle: ``tmstream predict`` (the same engine, reference models) followed by the faithful batch
thresholding finds the same anomaly sequences as the stream, for a SMAP and an MSL channel.
"""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from evaluation.detections import channel_detections
from producers.dataset import TelemanomDataset
from stream_workers.thresholding.parameters import ThresholdParameters

CHANNELS = {"P-1": "SMAP", "D-14": "MSL"}


def batch_sequences(pipeline, channel: str, nasa: TelemanomDataset, tmp: Path) -> list[tuple[int, int]]:
    out = tmp / f"{channel}.npy"
    result = pipeline.tmstream("predict", "--channel", channel, "--alias", "reference", "--out", str(out))
    assert result.returncode == 0, result.stderr
    detections = channel_detections(
        "batch", channel, np.load(out), nasa.load(channel)[:, 0], ThresholdParameters()
    )
    return [(d.start, d.end) for d in detections]


def closed(events: list[dict]) -> dict[str, list[tuple[int, int]]]:
    found: dict[str, list[tuple[int, int]]] = {channel: [] for channel in CHANNELS}
    for event in events:
        if event["status"] == "closed":
            found[event["channel"]].append((event["start_index"], event["end_index"]))
    return {channel: sorted(ranges) for channel, ranges in found.items()}


def scored(pipeline, name: str = "w1") -> float:
    return pipeline.metric(name, "tmstream_points_scored_total")


EXPECTED_SCORED = {"P-1": 8505 - 250, "D-14": 2625 - 250}


def replay(pipeline, *extra: str) -> subprocess.CompletedProcess[str]:
    result = pipeline.tmstream("replay", "--channels", ",".join(CHANNELS), "--max", *extra)
    assert result.returncode == 0, result.stderr
    return result


def wait_until_closed(pipeline, expected: dict[str, list[tuple[int, int]]], all_scored: bool = True) -> None:
    """Until the expected number of closed events is on the topic (and, for one uninterrupted
    worker, every point is scored)."""
    if all_scored:
        total = sum(EXPECTED_SCORED.values())
        pipeline.wait_for(lambda: scored(pipeline) >= total, 240, f"{total} points scored")
    count = sum(len(ranges) for ranges in expected.values())
    pipeline.wait_for(
        lambda: sum(len(r) for r in closed(pipeline.topic_events()).values()) >= count, 60, "closed events"
    )


def test_stream_finds_what_batch_finds_in_redis_and_on_the_topic(pipeline, nasa, tmp_path) -> None:
    expected = {channel: batch_sequences(pipeline, channel, nasa, tmp_path) for channel in CHANNELS}
    assert all(expected.values())
    pipeline.start_worker()
    pipeline.wait_ready()
    replay(pipeline)
    wait_until_closed(pipeline, expected)

    topic_events = pipeline.topic_events()
    assert closed(topic_events) == expected
    redis_events = pipeline.redis_events()
    emissions = [(e["event_id"], e["status"], e["end_index"]) for e in topic_events]
    assert not [key for key, n in Counter(emissions).items() if n > 1], "an emission was sent twice"
    assert sorted(emissions) == sorted((e["event_id"], e["status"], e["end_index"]) for e in redis_events)
    for channel, spacecraft in CHANNELS.items():
        assert (
            pipeline.metric("w1", "tmstream_points_scored_total", channel=channel) == EXPECTED_SCORED[channel]
        )
        assert (
            pipeline.metric("w1", "tmstream_points_consumed_total", channel=channel, spacecraft=spacecraft)
            > 0
        )
    listed = pipeline.tmstream("anomalies", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {e["event_id"] for e in __import__("json").loads(listed.stdout)} == {
        e["event_id"] for e in redis_events
    }


def test_killing_the_worker_mid_replay_changes_no_event(pipeline, nasa, tmp_path) -> None:
    expected = {channel: batch_sequences(pipeline, channel, nasa, tmp_path) for channel in CHANNELS}
    pipeline.start_worker()
    pipeline.wait_ready()
    replay(pipeline)
    pipeline.wait_for(lambda: scored(pipeline) >= 4000, 120, "4000 points scored")
    pipeline.stop_worker("w1", signal.SIGKILL)
    pipeline.start_worker("w1")
    pipeline.wait_ready("w1")
    wait_until_closed(pipeline, expected, all_scored=False)
    topic_events = pipeline.topic_events()
    assert closed(topic_events) == expected
    emissions = [(e["event_id"], e["status"], e["end_index"]) for e in topic_events]
    assert len(emissions) == len(set(emissions)), "duplicate emissions after a restart"
    redis = [(e["event_id"], e["status"], e["end_index"]) for e in pipeline.redis_events()]
    assert sorted(redis) == sorted(emissions)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("{broken json", "malformed_json"),
        (
            '{"schema":"tmstream.telemetry.v1","channel":"D-14","spacecraft":"MSL","index":0,'
            '"event_time_ms":0,"values":[0.5]}',
            "wrong_width",
        ),
    ],
)
def test_bad_messages_from_kcat_land_in_the_dead_letter_topic(pipeline, payload: str, reason: str) -> None:
    pipeline.start_worker()
    pipeline.wait_ready()
    topic = pipeline.topic("D-14", "MSL")
    bootstrap = pipeline.settings.kafka.bootstrap_servers
    sent = subprocess.run(
        ["kcat", "-P", "-b", bootstrap, "-t", topic, "-k", "D-14"], input=payload, text=True, timeout=30
    )
    assert sent.returncode == 0
    pipeline.wait_for(
        lambda: pipeline.metric("w1", "tmstream_dead_letters_total", reason=reason) == 1, 60, reason
    )
    dead = subprocess.run(
        ["kcat", "-C", "-b", bootstrap, "-t", pipeline.env["TMSTREAM_KAFKA_DEADLETTER_TOPIC"], "-e", "-q",
         "-f", "%h|%s\n"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    headers, value = dead.stdout.strip().split("|", 1)
    assert value == payload
    assert f"reason={reason}" in headers and f"source_topic={topic}" in headers


def test_commits_and_heartbeats_continue_while_scoring(pipeline) -> None:
    """Scoring runs off Faust's event loop: while a long channel is scored, offsets keep being
    committed and the group keeps its one member (no session timeout, no rebalance)."""
    from kafka.admin import KafkaAdminClient

    pipeline.start_worker()
    pipeline.wait_ready()
    settings = pipeline.settings
    group = pipeline.env["TMSTREAM_WORKER_GROUP"]
    admin = KafkaAdminClient(**settings.kafka.client_options())
    try:
        members = {m["member_id"] for m in admin.describe_groups([group])[group]["members"]}
        assert len(members) == 1
        result = pipeline.tmstream("replay", "--channels", "P-1", "--max")
        assert result.returncode == 0, result.stderr
        commits: list[int] = []
        while scored(pipeline) < EXPECTED_SCORED["P-1"]:
            offsets = admin.list_group_offsets(group)[group]
            commits.append(sum(o.offset for tp, o in offsets.items() if tp.topic.endswith(".P-1")))
            described = admin.describe_groups([group])[group]
            assert described["group_state"] == "Stable"
            assert {m["member_id"] for m in described["members"]} == members
        assert len(set(commits)) >= 3, f"offsets committed during scoring: {sorted(set(commits))}"
        assert commits == sorted(commits)
    finally:
        admin.close()
