"""A worker frozen mid-write past its group session while another takes over, then resumed.

A fail point freezes the zombie with SIGSTOP at a seeded count of its own emissions, right after
one reached the anomalies topic and before Redis: the middle of a write, where a resumed process
would carry on. The survivor takes the zombie's channels over (its session of 8 s ends), restores
their snapshots and re-derives what follows. The zombie is resumed once the survivor holds every
partition and has scored past the frozen point; it must notice it was frozen (``LoopLease``) and
exit (70) before writing anything more. Three zombies in turn during one paced replay; every
emission on the topic and in Redis must be the offline detector's, none lost, twice or extra.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

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
# Emissions on both partitions, spread over the run: A-5, T-1, A-3 and D-7 hash to partition 0
# (rows 2629 … 6759), P-1 and G-7 to 1 (rows 2349 … 7809); whichever the zombie gets, it emits.
CHANNELS = {"A-5": "SMAP", "T-1": "SMAP", "A-3": "SMAP", "D-7": "MSL", "P-1": "SMAP", "G-7": "SMAP"}
ZOMBIES = 3
EXIT_FENCED = 70


def frozen(pid: int) -> bool:
    """The process is stopped (state T in /proc)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] == "T"


def scored(pipeline, worker: str) -> float:
    return pipeline.metric(worker, "tmstream_points_scored_total")


def test_a_resumed_zombie_writes_nothing_and_no_emission_is_lost_or_repeated(pipeline, fault_table) -> None:
    rng = random.Random("zombie-2026")
    # Faust co-partitions the topics: with two partitions each, each worker owns one partition
    # number of every topic, so the zombie has channels.
    pipeline.env["TMSTREAM_KAFKA_TOPIC_PARTITIONS"] = "2"
    pipeline.env["BROKER_SESSION_TIMEOUT"] = "8"  # the zombie's lease: 4 s frozen and it may not write
    settings = pipeline.settings
    widths = {channel: rows_of(settings, channel).shape[1] for channel in CHANNELS}
    only_channels(pipeline.folder / "config", pipeline.run_id, CHANNELS, widths)
    expected = set().union(*(expected_emissions(settings, c, s) for c, s in CHANNELS.items()))
    pipeline.start_worker("survivor")
    pipeline.wait_ready("survivor")
    freezes, on_topic, takeovers = [], [], []
    with paced_replay(pipeline, CHANNELS, 60) as replay:  # ~140 s: room for three zombies
        for attempt in range(ZOMBIES):
            count = rng.randint(1, 2)
            name = f"z{attempt}"
            pipeline.env["TMSTREAM_FAILPOINTS"] = f"emission.sent_to_topic@{count}:stop"
            pipeline.start_worker(name)
            pipeline.env.pop("TMSTREAM_FAILPOINTS")
            zombie = pipeline.workers[name]
            deadline = time.monotonic() + 120
            while not frozen(zombie.pid) and time.monotonic() < deadline:
                assert zombie.poll() is None, pipeline.log(name)[-3000:]
                time.sleep(0.1)
            if not frozen(zombie.pid):  # the data ran out before the armed emission
                pipeline.stop_worker(name)
                break
            stopped = time.monotonic()
            on_topic.append(len(pipeline.topic_events()))  # kcat, right after the freeze
            going_on = scored(pipeline, "survivor") + 200
            pipeline.wait_for(
                lambda: pipeline.metric("survivor", "tmstream_assigned_partitions") == 2 * len(CHANNELS),
                90,
                "the survivor holding every partition",
            )
            pipeline.wait_for(
                lambda: scored(pipeline, "survivor") > going_on,  # noqa: B023  (called at once)
                60,
                "the survivor scoring on",
            )
            takeovers.append(time.monotonic() - stopped)
            zombie.send_signal(signal.SIGCONT)
            try:
                zombie.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pytest.fail(f"zombie {name} resumed and kept running: {pipeline.log(name)[-3000:]}")
            log = pipeline.log(name)
            assert zombie.returncode == EXIT_FENCED, log[-3000:]
            assert "frozen for" in log and "writes nothing more" in log, log[-3000:]
            pipeline.stop_worker(name)
            freezes.append(count)
        replay.finish(timeout=300)
        figures = settled_emissions(pipeline, expected, 300)
    lost_points = points_lost(pipeline, CHANNELS)
    fault_table(
        scenario="SIGSTOP mid-write past the session (zombie), another takes over, SIGCONT",
        kill_points=len(freezes),
        after_emissions=sum(n > 0 for n in on_topic),
        points_lost=lost_points,
        recover_s=max(takeovers, default=float("nan")),
        **figures,
    )
    assert len(freezes) >= 2, f"only {len(freezes)} zombies froze"
    assert all(n > 0 for n in on_topic), on_topic
    assert lost_points == 0
    print(f"zombies: {len(freezes)} frozen at emissions {freezes}, topic held {on_topic} emissions at "
          f"the freezes, survivor took over in {[round(t, 1) for t in takeovers]} s; {figures}")  # fmt: skip
