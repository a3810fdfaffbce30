"""A channel topic gets a second partition mid-stream (``kafka-topics --alter`` / create_partitions).

The replay's keyed producer then sends P-1 to partition 1 (murmur2), at offsets from 0, while the
worker's stream of P-1 last took offset ~3,000 of partition 0. Before, offsets were compared
without the partition and every later P-1 record was skipped as a redelivery; now the stream's
position is (topic, partition, offset), and the emissions equal the offline detector's.
"""

from __future__ import annotations

import pytest
from kafka.admin import NewPartitions
from kafka.partitioner.default import murmur2

from tests.faults.pipeline_checks import (
    expected_emissions,
    only_channels,
    paced_replay,
    rows_of,
    settled_emissions,
)
from tmstream.ground.topics import admin_client

pytestmark = pytest.mark.fault
CHANNEL, SPACECRAFT = "P-1", "SMAP"


def test_a_partition_count_increase_loses_no_point(pipeline, fault_table) -> None:
    assert (murmur2(CHANNEL.encode()) & 0x7FFFFFFF) % 2 == 1  # P-1 moves to the new partition
    settings = pipeline.settings
    rows = len(rows_of(settings, CHANNEL))
    only_channels(pipeline.folder / "config", pipeline.run_id, {CHANNEL: SPACECRAFT}, {CHANNEL: 25})
    expected = expected_emissions(settings, CHANNEL, SPACECRAFT)
    pipeline.env["TMSTREAM_WORKER_IDLE_CLOSE_S"] = "60"  # the pause is not the end of the stream
    pipeline.start_worker("w1")
    pipeline.wait_ready("w1")
    with paced_replay(pipeline, [CHANNEL], 1500) as producer:
        pipeline.wait_for(
            lambda: pipeline.metric("w1", "tmstream_points_consumed_total") >= 3000, 90, "3,000 points"
        )
        producer.kill()
    with admin_client(settings) as admin:
        admin.create_partitions({pipeline.topic(CHANNEL, SPACECRAFT): NewPartitions(total_count=2)})
    pipeline.wait_for(
        lambda: pipeline.metric("w1", "tmstream_assigned_partitions") == 2, 120, "the new partition"
    )
    resumed = pipeline.tmstream("replay", "--channels", CHANNEL, "--resume", "--max", "--json")
    assert resumed.returncode == 0, resumed.stderr
    figures = settled_emissions(pipeline, expected, 180)
    assert pipeline.metric("w1", "tmstream_points_consumed_total") == rows
    assert pipeline.metric("w1", "tmstream_dead_letters_total") == 0
    fault_table(scenario="a channel topic's partitions 1 → 2 mid-stream", **figures)
