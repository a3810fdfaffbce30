"""Redis away for 10 s while the worker scores: its writes are retried, nothing lost or repeated.

The Redis is this test's own (``RedisService``, as ``tmstream stack up`` runs it, append-only file
on), stopped and started again through its ``ServiceProcess``.
"""

from __future__ import annotations

import time

import pytest

from tests.faults.pipeline_checks import (
    expected_emissions,
    only_channels,
    paced_replay,
    rows_of,
    settled_emissions,
)
from tests.faults.private_services import private_redis, start_and_wait

pytestmark = pytest.mark.fault
CHANNELS = {"D-14": "MSL", "T-12": "MSL"}
OUTAGE_S = 10.0


def test_redis_outage_delays_events_and_loses_none(pipeline, tmp_path) -> None:
    with private_redis(tmp_path / "private") as redis:
        pipeline.env["TMSTREAM_REDIS_URL"] = f"redis://127.0.0.1:{redis.settings.redis.port}/0"
        pipeline.env["TMSTREAM_WORKER_IDLE_CLOSE_S"] = "20"  # a worker blocked on Redis is not idle
        settings = pipeline.settings
        l_s = settings.model.l_s
        rows = {channel: len(rows_of(settings, channel)) for channel in CHANNELS}
        only_channels(pipeline.folder / "config", pipeline.run_id, CHANNELS, dict.fromkeys(CHANNELS, 55))
        expected = set().union(*(expected_emissions(settings, c, s) for c, s in CHANNELS.items()))
        pipeline.start_worker("w1")
        pipeline.wait_ready("w1")
        with paced_replay(pipeline, CHANNELS, 100) as replay:  # ~26 s, so the outage lands mid-stream
            pipeline.wait_for(
                lambda: pipeline.metric("w1", "tmstream_points_scored_total") >= 300, 120, "first points"
            )
            assert redis.process.stop()
            time.sleep(OUTAGE_S)
            scored_during = pipeline.metric("w1", "tmstream_points_scored_total")
            start_and_wait(redis, 20)
            replay.finish(timeout=120)

        total = sum(rows.values()) - l_s * len(rows)
        pipeline.wait_for(
            lambda: pipeline.metric("w1", "tmstream_points_scored_total") == total, 180, "every point scored"
        )
        figures = settled_emissions(pipeline, expected, 120, wait_on_redis=True)
        retries = pipeline.metric("w1", "tmstream_sink_retries_total", sink="redis")
        assert retries > 0
        assert pipeline.metric("w1", "tmstream_anomaly_events_emitted_total", sink="redis") == len(expected)
        assert "redis unavailable" in pipeline.log("w1")
        print(f"redis-outage: {figures}, retries {retries:.0f}, scored when Redis came back "
              f"{scored_during:.0f} of {total}")  # fmt: skip
