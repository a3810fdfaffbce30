"""``kill -9`` of the worker where the no-lost, no-duplicate claim matters: at its own emissions.

A fail point (``tmstream.ground.failpoints``) kills the worker with SIGKILL at a seeded count of
fresh emissions, at one of three places: after an emission reached the ``anomalies`` topic and
before Redis, after both sinks and before the next snapshot, and while a snapshot is in flight
after an emission. Each scenario kills a chain of workers (a supervisor's restarts) during one
replay, then lets a last worker finish; every emission on the topic and in Redis must equal the
offline detector's, none lost, none twice, none extra.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
import urllib.request

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
CHANNELS = {"P-1": "SMAP", "D-7": "MSL", "G-7": "SMAP"}
KILLS = 4
PLACES = {
    "after the topic, before Redis": "emission.sent_to_topic@{n}",
    "after both sinks, before the snapshot": "emission.sent_to_all@{n}",
    "during a snapshot, after an emission": "snapshot.queued@1>emission.sent_to_all@{n}",
}


@pytest.mark.parametrize("place", sorted(PLACES))
def test_kills_at_emissions_lose_and_repeat_nothing(pipeline, fault_table, place: str) -> None:
    rng = random.Random(f"{place}-2026")
    pipeline.env["BROKER_SESSION_TIMEOUT"] = "8"  # Faust's knob: a killed member's partitions free sooner
    settings = pipeline.settings
    widths = {channel: rows_of(settings, channel).shape[1] for channel in CHANNELS}
    only_channels(pipeline.folder / "config", pipeline.run_id, CHANNELS, widths)
    expected = set().union(*(expected_emissions(settings, c, s) for c, s in CHANNELS.items()))
    assert sum(status == "closed" for _, status, _ in expected) >= 8  # several anomalies per run
    kills, recoveries, on_topic = [], [], []
    # Paced, so that the chain of kills spreads over the channels' anomalies.
    with paced_replay(pipeline, CHANNELS, 400) as replay:
        for attempt in range(KILLS):
            count = rng.randint(1, 3)
            pipeline.env["TMSTREAM_FAILPOINTS"] = PLACES[place].format(n=count)
            name = f"k{attempt}"
            pipeline.start_worker(name)
            ready = ready_in(pipeline, name)
            try:
                pipeline.workers[name].wait(timeout=240)
            except subprocess.TimeoutExpired:  # the data ran out before the armed emission
                pipeline.stop_worker(name)
                break
            returncode = pipeline.workers[name].returncode
            assert returncode == -signal.SIGKILL, pipeline.log(name)[-3000:]
            pipeline.stop_worker(name)
            kills.append(count)
            on_topic.append(len(pipeline.topic_events()))  # read by kcat, right after the kill
            if ready is not None:
                recoveries.append(ready)
        pipeline.env.pop("TMSTREAM_FAILPOINTS")
        pipeline.start_worker("last")
        replay.finish(timeout=300)
        figures = settled_emissions(pipeline, expected, 300)
    lost_points = points_lost(pipeline, CHANNELS)
    fault_table(
        scenario=f"kill -9 {place}",
        kill_points=len(kills),
        after_emissions=sum(n > 0 for n in on_topic),
        points_lost=lost_points,
        recover_s=max(recoveries, default=float("nan")),
        **figures,
    )
    assert len(kills) >= 3, f"only {len(kills)} kills landed"
    assert all(n > 0 for n in on_topic), on_topic  # each kill came after emissions existed
    assert lost_points == 0


def ready_in(pipeline, name: str, timeout: float = 120) -> float | None:
    """Seconds until the worker answers ready (its partitions assigned after the predecessor's
    session ended), or None when it died first (a kill at its first emissions can come sooner)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if pipeline.workers[name].poll() is not None:
            return None
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{pipeline.ports[name]}/ready", timeout=2) as r:
                if json.loads(r.read())["ready"]:
                    return time.monotonic() - started
        except (OSError, ValueError):
            pass
        time.sleep(0.25)
    return None
