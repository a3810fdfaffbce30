"""``kill -9`` of Redis (append-only file, ``appendfsync everysec``) right after it took emissions.

The first kill loses nothing: Redis writes its append-only file before it answers, and a killed
process's writes are in the kernel already (only a machine crash loses the unsynced second). The
second kill comes back *empty* (its data folder removed: a lost disk, a replica promoted without
the data): every earlier emission is gone from Redis while the worker goes on writing new ones.
``tmstream anomalies reconcile`` rebuilds what is missing from the ``anomalies`` topic, after which
Redis holds the offline detector's emissions exactly, as the topic does, none twice.
"""

from __future__ import annotations

import json
import os
import shutil
import signal

import pytest

from tests.faults.pipeline_checks import (
    assert_same_emissions,
    emissions_of,
    expected_emissions,
    only_channels,
    paced_replay,
    rows_of,
)
from tests.faults.private_services import private_redis, start_and_wait
from tmstream.stack.process import wait_until

pytestmark = pytest.mark.fault
CHANNELS = {"P-1": "SMAP", "G-7": "SMAP"}
KILLS = 2


def test_redis_killed_after_emissions_is_rebuilt_from_the_topic(pipeline, tmp_path, fault_table) -> None:
    with private_redis(tmp_path / "private") as redis:
        pipeline.env["TMSTREAM_REDIS_URL"] = f"redis://127.0.0.1:{redis.settings.redis.port}/0"
        pipeline.env["TMSTREAM_WORKER_IDLE_CLOSE_S"] = "20"  # a worker waiting on Redis is not idle
        settings = pipeline.settings
        widths = {channel: rows_of(settings, channel).shape[1] for channel in CHANNELS}
        only_channels(pipeline.folder / "config", pipeline.run_id, CHANNELS, widths)
        expected = set().union(*(expected_emissions(settings, c, s) for c, s in CHANNELS.items()))
        pipeline.start_worker("w1")
        pipeline.wait_ready("w1")
        recoveries = []
        with paced_replay(pipeline, CHANNELS, 300) as replay:
            for kill in range(KILLS):
                seen = 2 + 4 * kill  # after emissions exist, a few more each time
                pipeline.wait_for(lambda n=seen: len(pipeline.redis_events()) >= n, 180, f"{seen} in Redis")
                pid = redis.process.pid()
                assert pid is not None
                os.kill(pid, signal.SIGKILL)
                assert wait_until(lambda: not redis.process.running(), 10, 0.05)
                if kill == KILLS - 1:  # the last one comes back without its data
                    for kept in redis.process.folder.glob("appendonly*"):
                        if kept.is_dir():
                            shutil.rmtree(kept)
                        else:
                            kept.unlink()
                    (redis.process.folder / "dump.rdb").unlink(missing_ok=True)
                recoveries.append(start_and_wait(redis, 20))
            replay.finish(timeout=300)
        pipeline.wait_for(
            lambda: pipeline.metric("w1", "tmstream_consumer_lag_messages") == 0, 180, "consumed"
        )
        pipeline.wait_for(lambda: len(pipeline.topic_events()) >= len(expected), 120, "the topic's emissions")
        on_topic = emissions_of(pipeline.topic_events())
        reconcile = pipeline.tmstream("anomalies", "reconcile", "--json")
        assert reconcile.returncode == 0, reconcile.stderr
        written = json.loads(reconcile.stdout)["written"]
        figures = assert_same_emissions(on_topic, emissions_of(pipeline.redis_events()), expected)
        assert written >= 2 + 4 * (KILLS - 1)  # at least what Redis held before it came back empty
        fault_table(
            scenario="Redis kill -9 after emissions (the last one back empty), then reconcile",
            kill_points=KILLS,
            after_emissions=KILLS,
            recover_s=max(recoveries),
            **figures,
        )
        print(f"redis-kill: {figures}, {written} rebuilt from the topic")
