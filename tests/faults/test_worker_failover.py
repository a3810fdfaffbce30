"""``kill -9`` one of two workers mid-stream: the survivor takes its partitions over.

The worker's assignor spreads each topic's partitions over the members, so with two-partition
topics each worker owns one partition of every topic: partition 0 of both or partition 1 of both
(the spread deals partition numbers in order, as Faust's co-partitioning did). D-14 hashes to
partition 0 and P-1 to partition 1 (murmur2 of the key, as the replay's publisher routes it): each
worker gets a channel.
"""

from __future__ import annotations

import signal

import pytest
from kafka.partitioner.default import murmur2

from tests.faults.pipeline_checks import (
    expected_emissions,
    only_channels,
    paced_replay,
    rows_of,
    settled_emissions,
    snapshot_rows,
)

pytestmark = pytest.mark.fault
CHANNELS = {"D-14": "MSL", "P-1": "SMAP"}
WIDTHS = {"D-14": 55, "P-1": 25}


def scored(pipeline, worker: str, channel: str) -> float:
    return pipeline.metric(worker, "tmstream_points_scored_total", channel=channel)


def test_survivor_takes_over_without_losing_or_repeating_an_emission(pipeline) -> None:
    assert {(murmur2(c.encode()) & 0x7FFFFFFF) % 2 for c in CHANNELS} == {0, 1}
    pipeline.env["TMSTREAM_KAFKA_TOPIC_PARTITIONS"] = "2"
    pipeline.env["BROKER_SESSION_TIMEOUT"] = "15"  # Faust's knob: the dead member's partitions free up sooner
    settings = pipeline.settings
    l_s = settings.model.l_s
    rows = {channel: len(rows_of(settings, channel)) for channel in CHANNELS}
    only_channels(pipeline.folder / "config", pipeline.run_id, CHANNELS, WIDTHS)
    expected = set().union(*(expected_emissions(settings, c, s) for c, s in CHANNELS.items()))
    for name in ("w1", "w2"):
        pipeline.start_worker(name)
    for name in ("w1", "w2"):
        pipeline.wait_ready(name)
    pipeline.wait_for(
        lambda: [pipeline.metric(n, "tmstream_assigned_partitions") for n in ("w1", "w2")] == [2.0, 2.0],
        90,
        "two partitions (one per topic) on each worker",
    )
    # Paced (P-1's 8,505 rows in about 11 s), so the kill lands mid-stream however fast the workers are.
    with paced_replay(pipeline, CHANNELS, 800) as replay:
        pipeline.wait_for(
            lambda: scored(pipeline, "w1", "P-1") + scored(pipeline, "w2", "P-1") >= 1500, 120, "P-1"
        )
        victim, survivor = ("w1", "w2") if scored(pipeline, "w1", "P-1") else ("w2", "w1")
        assert scored(pipeline, survivor, "P-1") == 0 and scored(pipeline, victim, "D-14") == 0
        victim_scored = scored(pipeline, victim, "P-1")
        pipeline.stop_worker(victim, signal.SIGKILL)
        replay.finish(timeout=120)
    resumed = snapshot_rows(settings)["P-1"]
    assert l_s < resumed < rows["P-1"]

    pipeline.wait_for(
        lambda: pipeline.metric(survivor, "tmstream_assigned_partitions") == 4, 120, "the victim's partitions"
    )
    pipeline.wait_for(
        lambda: scored(pipeline, survivor, "P-1") == rows["P-1"] - resumed, 240, "P-1 scored by the survivor"
    )
    figures = settled_emissions(pipeline, expected, 60)
    assert scored(pipeline, survivor, "D-14") == rows["D-14"] - l_s
    assert scored(pipeline, survivor, "P-1") == rows["P-1"] - resumed
    print(f"failover: {figures}, victim scored P-1 ≥{victim_scored:.0f} (snapshot at row {resumed}), "
          f"survivor scored P-1 {rows['P-1'] - resumed}, D-14 {rows['D-14'] - l_s}")  # fmt: skip
