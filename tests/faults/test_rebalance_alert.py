"""A rebalance that moves a critical channel in alarm, through the real Prometheus and its rules.

Two power/attitude channels, one per partition (P-1 on 1, A-5 on 0, murmur2 of the key), are
replayed into their first anomaly and left silent there (idle close far off), so both are in
alarm on the one worker and ``TmstreamCriticalSubsystemAnomaly`` fires for both. A second worker
joins: whichever partition it takes, one channel moves in alarm. Then:

- the old worker exports no series of the moved channel (Prometheus has none left from it);
- the new owner exports the alarm from the snapshot at once, so the alert keeps firing while the
  channel is silent;
- the rest of both channels is replayed: every emission on both sinks is the offline detector's,
  and the alert resolves for both once their anomalies close, the moved one on its new owner.

Before revoked channels dropped their series, the old worker kept exporting ``in_alarm 1`` and the
alert never resolved.
"""

from __future__ import annotations

import time

import pytest
from kafka.partitioner.default import murmur2

from dashboards.prometheus_api import PrometheusApi
from tests.faults.pipeline_checks import alarm_rows, expected_emissions, only_channels, settled_emissions
from tmstream.ground.exposition import scrape_samples

pytestmark = pytest.mark.fault
CHANNELS = {"P-1": "SMAP", "A-5": "SMAP"}
WIDTHS = {"P-1": 25, "A-5": 25}
ALERT = "TmstreamCriticalSubsystemAnomaly"


def in_alarm(pipeline, worker: str, channel: str) -> float | None:
    """The worker's ``tmstream_channel_in_alarm`` for the channel; None when it exports no such series."""
    samples = scrape_samples(f"http://127.0.0.1:{pipeline.ports[worker]}/metrics")
    found = [
        s.value
        for s in samples
        if s.name == "tmstream_channel_in_alarm" and s.labels.get("channel") == channel
    ]
    return found[0] if found else None


def firing(api: PrometheusApi, channel: str) -> bool:
    return bool(api.instant(alert_of(channel), time.time()))


def alert_of(channel: str) -> str:
    return f'ALERTS{{alertname="{ALERT}",alertstate="firing",channel="{channel}"}}'


def test_a_channel_moved_in_alarm_leaves_the_old_worker_and_its_alert_resolves(
    pipeline, stack, fault_table
) -> None:
    assert {c: (murmur2(c.encode()) & 0x7FFFFFFF) % 2 for c in CHANNELS} == {"P-1": 1, "A-5": 0}
    pipeline.env["TMSTREAM_KAFKA_TOPIC_PARTITIONS"] = "2"
    pipeline.env["TMSTREAM_WORKER_IDLE_CLOSE_S"] = "900"  # silent in alarm until the test resumes it
    settings = pipeline.settings
    api = PrometheusApi(stack.prometheus.effective_url)
    only_channels(pipeline.folder / "config", pipeline.run_id, CHANNELS, WIDTHS)
    expected = set().union(*(expected_emissions(settings, c, s) for c, s in CHANNELS.items()))
    first_alarm = {channel: alarm_rows(settings, channel)[0] for channel in CHANNELS}

    pipeline.start_worker("w1")
    pipeline.wait_ready("w1")
    pipeline.wait_for(lambda: pipeline.metric("w1", "tmstream_assigned_partitions") == 4, 90, "4 partitions")
    for channel, (opens, closes) in first_alarm.items():
        until = opens + (closes - opens) // 2  # inside the anomaly: opened, not yet closed
        sent = pipeline.tmstream("replay", "--channels", channel, "--until-index", str(until), "--max")
        assert sent.returncode == 0, sent.stderr
    pipeline.wait_for(lambda: all(in_alarm(pipeline, "w1", c) == 1 for c in CHANNELS), 120, "both in alarm")
    pipeline.wait_for(lambda: all(firing(api, c) for c in CHANNELS), 60, f"{ALERT} firing for both")

    joined, joined_at = time.monotonic(), time.time()
    pipeline.start_worker("w2")
    pipeline.wait_ready("w2")
    pipeline.wait_for(
        lambda: [pipeline.metric(n, "tmstream_assigned_partitions") for n in ("w1", "w2")] == [2.0, 2.0],
        120,
        "two partitions on each worker",
    )
    pipeline.wait_for(lambda: any(in_alarm(pipeline, "w2", c) == 1 for c in CHANNELS), 30, "the moved alarm")
    [moved] = [c for c in CHANNELS if in_alarm(pipeline, "w2", c) is not None]
    [stayed] = [c for c in CHANNELS if c != moved]
    handed_s = time.monotonic() - joined
    assert in_alarm(pipeline, "w1", moved) is None, "the old owner still exports the moved channel"
    assert in_alarm(pipeline, "w1", stayed) == 1 and in_alarm(pipeline, "w2", stayed) is None
    old_series = f'tmstream_channel_in_alarm{{channel="{moved}",instance="w1"}}'
    pipeline.wait_for(
        lambda: not api.instant(old_series, time.time()), 30, "w1's series gone from Prometheus"
    )
    new_series = f'tmstream_channel_in_alarm{{channel="{moved}",instance="w2"}} == 1'
    pipeline.wait_for(lambda: bool(api.instant(new_series, time.time())), 30, "w2's series in Prometheus")
    time.sleep(3)  # a few rule evaluations with the moved channel silent on its new owner
    silent_until = time.time()

    resumed = pipeline.tmstream("replay", "--channels", ",".join(CHANNELS), "--resume", "--max")
    assert resumed.returncode == 0, resumed.stderr
    figures = settled_emissions(pipeline, expected, 180)
    pipeline.wait_for(lambda: not any(firing(api, c) for c in CHANNELS), 60, f"{ALERT} resolved for both")
    assert in_alarm(pipeline, "w2", moved) == 0 and in_alarm(pipeline, "w1", moved) is None
    assert in_alarm(pipeline, "w1", stayed) == 0
    [series] = api.range(alert_of(moved), joined_at, silent_until, 1)
    stamps = [float(t) for t, _ in series["values"]]
    gaps = [b - a for a, b in zip([joined_at, *stamps], [*stamps, silent_until], strict=True) if b - a > 1.5]
    assert not gaps, f"the alert of {moved} stopped firing during the hand-over: gaps of {gaps} s"
    fault_table(
        scenario=f"rebalance in alarm: a worker joins, {moved} moves, alert resolves",
        kill_points="1 join",
        after_emissions=0,
        points_lost=0,
        expected=figures["expected"],
        lost=figures["lost"],
        duplicated=figures["duplicated"],
        extra=figures["extra"],
        recover_s=handed_s,
    )
    print(f"rebalance in alarm: {moved} moved to w2 in {handed_s:.1f} s, {stayed} stayed; {figures}")
