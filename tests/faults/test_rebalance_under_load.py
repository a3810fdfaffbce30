"""Rebalances under load: workers join and leave during a replay with anomalies, and a channel
starts sending mid-stream.

One paced replay of P-1, D-7 and G-7 (two partitions per topic, so members share the work) runs
while the group changes at seeded moments: a second and a third worker join, the first leaves
with SIGTERM (a clean hand-over: its revoke snapshots), the second is killed with SIGKILL (its
session of 8 s ends), and a fourth joins. Halfway, a replay of A-5 starts: a channel first seen
amid the rebalances, scored from row 0. (A topic that appears after the workers started is a
channel the registry did not know then: the live-channels issue's onboarding.) Every emission of
the four channels on the topic and in Redis must be the offline detector's.
"""

from __future__ import annotations

import random
import signal
import time
from contextlib import ExitStack

import pytest

from tests.faults.pipeline_checks import (
    expected_emissions,
    only_channels,
    paced_replay,
    points_lost,
    rows_of,
    settled_emissions,
)

pytestmark = pytest.mark.fault
FIRST = {"P-1": "SMAP", "D-7": "MSL", "G-7": "SMAP"}
LATER = {"A-5": "SMAP"}
# what happens, in order, at seeded moments 8-70 s into the replay
CHANGES = ("join w2", "join w3", "leave w1", "kill w2", "join w4")


def test_workers_joining_and_leaving_and_a_new_topic_lose_and_repeat_nothing(pipeline, fault_table) -> None:
    rng = random.Random("rebalance-under-load-2026")
    channels = {**FIRST, **LATER}
    pipeline.env["TMSTREAM_KAFKA_TOPIC_PARTITIONS"] = "2"
    pipeline.env["BROKER_SESSION_TIMEOUT"] = "8"
    settings = pipeline.settings
    widths = {channel: rows_of(settings, channel).shape[1] for channel in channels}
    only_channels(pipeline.folder / "config", pipeline.run_id, channels, widths)
    expected = set().union(*(expected_emissions(settings, c, s) for c, s in channels.items()))
    moments = sorted(rng.uniform(8, 70) for _ in CHANGES)
    pipeline.start_worker("w1")
    pipeline.wait_ready("w1")
    emissions_at_changes = []
    with paced_replay(pipeline, FIRST, 100) as replay, ExitStack() as stack:  # ~85 s
        started = time.monotonic()
        later = None
        for moment, change in zip(moments, CHANGES, strict=True):
            time.sleep(max(0.0, started + moment - time.monotonic()))
            if later is None and moment > 35:  # A-5 starts sending mid-stream
                later = stack.enter_context(paced_replay(pipeline, LATER, 100))
            action, name = change.split()
            if action == "join":
                pipeline.start_worker(name)
            else:
                pipeline.stop_worker(name, signal.SIGTERM if action == "leave" else signal.SIGKILL)
            emissions_at_changes.append(len(pipeline.topic_events()))
        if later is None:
            later = stack.enter_context(paced_replay(pipeline, LATER, 100))
        replay.finish(timeout=300)
        later.finish(timeout=300)
        figures = settled_emissions(pipeline, expected, 300)
    lost_points = points_lost(pipeline, channels)
    fault_table(
        scenario="rebalances under load: 3 joins, a leave, a kill; a channel starting mid-stream",
        kill_points=len(CHANGES),
        after_emissions=sum(n > 0 for n in emissions_at_changes),
        points_lost=lost_points,
        recover_s=float("nan"),
        **figures,
    )
    assert lost_points == 0
    assert sum(n > 0 for n in emissions_at_changes) >= 3, emissions_at_changes
    print(f"rebalance under load: changes at {[round(m) for m in moments]} s, emissions on the topic "
          f"then {emissions_at_changes}; {figures}")  # fmt: skip
