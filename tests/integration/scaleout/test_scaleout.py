"""Scale-out on the real stack, on the default layout: a topic per channel with one partition.

Faust's own assignor co-partitioned (partition number p of every topic to one member), so a second
worker got no channel. With ``SpreadingAssignor`` the channels are shared: one, two and three
workers score the same input, each worker owns channels, every point is scored once, and the
emissions are one worker's. Then workers join one by one mid-replay: the channels that move carry
on at their new owner, and every emission on the topic and in Redis is the offline detector's,
once. The harness and its measurements are ``benchmarks/scaleout.py`` (``tmstream bench scaleout``).
"""

from __future__ import annotations

from collections import Counter

import pytest

from benchmarks.scaleout import configuration, import_models
from tests.faults.pipeline_checks import (
    expected_emissions,
    only_channels,
    paced_replay,
    points_lost,
    rows_of,
    settled_emissions,
)
from tests.integration.conftest import Pipeline
from tmstream.ground.exposition import scrape_samples
from tmstream.ground.settings import Settings

CHANNELS = ("D-15", "D-16", "T-4", "M-4", "C-2", "T-5")  # MSL, about 2,000-2,200 test rows each
# reference models with anomalies, ~7,600-8,600 rows: about 85 s at 100 points/s per channel
REPLAYED = {"P-1": "SMAP", "D-7": "SMAP", "G-7": "SMAP", "A-1": "SMAP", "A-3": "SMAP", "T-1": "SMAP"}
JOINING = ("w2", "w3")  # each starts once the topic holds emissions the group had not sent at the last join


@pytest.fixture(scope="module")
def channels(stack: Settings) -> tuple[str, ...]:
    import_models(CHANNELS)
    return CHANNELS


def test_two_and_three_workers_share_one_partition_channel_topics_and_emit_what_one_does(
    stack, channels, tmp_path
) -> None:
    assert stack.kafka.topic_partitions == 1, "the default layout"
    results = {}
    for count in (1, 2, 3):
        with configuration(stack, tmp_path, count, channels) as config:
            results[count] = config.measure()
    single = results[1]
    assert single.closed_events, "no anomaly closed: the comparison would prove nothing"
    assert max(Counter(single.emissions).values()) == 1
    for count, result in results.items():
        held = [w.assigned_partitions for w in result.workers]
        owned = [w.channels for w in result.workers]
        assert sorted(held) == [len(channels) // count] * count, (count, held)
        assert sorted(c for mine in owned for c in mine) == sorted(channels), (count, owned)  # once each
        assert all(w.points_scored > 0 for w in result.workers), (count, result.workers)
        assert result.points_scored == result.points_expected, count  # every point once
        assert Counter(result.emissions) == Counter(single.emissions), count
        assert result.closed_events == single.closed_events, count


def partitions_held(pipeline: Pipeline) -> list[int]:
    return [round(pipeline.metric(name, "tmstream_assigned_partitions")) for name in sorted(pipeline.workers)]


def points_scored(pipeline: Pipeline) -> int:
    return round(sum(pipeline.metric(name, "tmstream_points_scored_total") for name in pipeline.workers))


def channels_owned(pipeline: Pipeline, name: str) -> set[str]:
    """The channels whose series worker ``name`` exports: only a channel's owner does."""
    samples = scrape_samples(f"http://127.0.0.1:{pipeline.ports[name]}/metrics")
    return {s.labels["channel"] for s in samples if s.name == "tmstream_points_consumed_total" and s.value}


def settled_split(pipeline: Pipeline, total: int) -> list[int]:
    """Partitions per worker once every worker holds some, all ``total`` are held, and two polls agree."""
    seen: list[list[int]] = []

    def settled() -> bool:
        seen.append(partitions_held(pipeline))
        return len(seen) > 1 and seen[-1] == seen[-2] and sum(seen[-1]) == total and min(seen[-1]) > 0

    pipeline.wait_for(settled, 120, f"{len(pipeline.workers)} workers holding {total} partitions")
    return seen[-1]


def test_workers_joining_mid_replay_take_channels_over_and_lose_or_repeat_no_emission(pipeline) -> None:
    settings = pipeline.settings
    assert settings.kafka.topic_partitions == 1, "the default layout"
    widths = {channel: rows_of(settings, channel).shape[1] for channel in REPLAYED}
    only_channels(pipeline.folder / "config", pipeline.run_id, REPLAYED, widths)
    expected = set().union(*(expected_emissions(settings, c, s) for c, s in REPLAYED.items()))
    pipeline.start_worker("w1")
    pipeline.wait_ready("w1")
    points = sum(len(rows_of(settings, channel)) - settings.model.l_s for channel in REPLAYED)
    splits, emitted, scored = [settled_split(pipeline, len(REPLAYED))], [0], []
    with paced_replay(pipeline, REPLAYED, 100) as replay:  # about 85 s
        for name in JOINING:
            pipeline.wait_for(lambda: len(pipeline.topic_events()) > emitted[-1], 180, "new emissions")
            pipeline.start_worker(name)
            pipeline.wait_ready(name)
            splits.append(settled_split(pipeline, len(REPLAYED)))
            emitted.append(len(pipeline.topic_events()))
            scored.append(points_scored(pipeline))
        replay.finish(timeout=300)
        figures = settled_emissions(pipeline, expected, 300)
    owners = {name: channels_owned(pipeline, name) for name in sorted(pipeline.workers)}
    print(f"scaling 1 -> 2 -> 3 mid-replay: partitions {splits}, emissions on the topic after the joins "
          f"{emitted[1:]}, points scored then {scored} of {points}, owners {owners}; {figures}")  # fmt: skip
    assert splits == [[6], [3, 3], [2, 2, 2]]
    assert all(n < points for n in scored), (scored, points)  # both joins mid-stream
    assert all(len(mine) == 2 for mine in owners.values()), owners
    assert set().union(*owners.values()) == set(REPLAYED), owners
    assert points_lost(pipeline, REPLAYED) == 0
