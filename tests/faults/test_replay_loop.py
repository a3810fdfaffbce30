"""``tmstream replay --loop``: the source restarts its index; the worker scores every pass.

Before, the second pass was dead-lettered row by row (`out_of_order_index`) forever. Now each
restart of the index starts a stream epoch: the first pass's emissions are the offline detector's,
the second pass's are the same anomalies under epoch-1 event ids, nothing is dead-lettered.
"""

from __future__ import annotations

import pytest
from kafka import TopicPartition

from tests.faults.pipeline_checks import (
    assert_same_emissions,
    closed_count,
    emissions_of,
    expected_emissions,
    only_channels,
    paced_replay,
    rows_of,
)
from tmstream.ground.topic_reader import end_offset

pytestmark = pytest.mark.fault
CHANNELS = {"P-1": "SMAP"}


def test_a_looping_replay_is_scored_pass_after_pass(pipeline, fault_table) -> None:
    settings = pipeline.settings
    rows = len(rows_of(settings, "P-1"))
    only_channels(pipeline.folder / "config", pipeline.run_id, CHANNELS, {"P-1": 25})
    expected = expected_emissions(settings, "P-1", "SMAP") | expected_emissions(settings, "P-1", "SMAP", 1)
    pipeline.start_worker("w1")
    pipeline.wait_ready("w1")
    topic = TopicPartition(pipeline.topic("P-1", "SMAP"), 0)
    with paced_replay(pipeline, CHANNELS, 4000, loop=True) as replay:
        pipeline.wait_for(lambda: end_offset(settings, topic) >= 2 * rows, 120, "two passes on the topic")
        replay.kill()  # in the third pass: its rows are cut off below
    # the third pass, cut off, is epoch 2: compare what the two whole passes say
    closed = sum(status == "closed" for _, status, _ in expected)

    def passes(events: list[dict[str, object]]) -> list[dict[str, object]]:
        return [e for e in events if e["stream_epoch"] in (0, 1)]

    pipeline.wait_for(
        lambda: closed_count(passes(pipeline.topic_events())) == closed, 180, "both passes closed"
    )
    pipeline.wait_for(lambda: closed_count(passes(pipeline.redis_events())) == closed, 60, "in Redis too")
    topic, redis = passes(pipeline.topic_events()), passes(pipeline.redis_events())
    figures = assert_same_emissions(emissions_of(topic), emissions_of(redis), expected)
    assert pipeline.metric("w1", "tmstream_dead_letters_total") == 0
    assert {e["close_reason"] for e in topic if e["stream_epoch"] == 0 and e["status"] == "closed"} <= {
        "ended", "stream_restarted"
    }  # fmt: skip
    fault_table(scenario="replay --loop: the index restarts", **figures)
