"""A network partition between the worker and Redis, with toxiproxy, after emissions exist.

The worker reaches the session's Redis through a toxiproxy of this test's own. Once the first
emissions are in Redis, ``timeout`` toxics with timeout 0 black-hole both directions: connections
stay open and nothing gets through, as on a partitioned network (no reset, no refusal: the client
must notice by its own socket timeout). For 20 s the anomalies topic must go on receiving the
alarms (Redis is a queued view: it must not hold them); then the toxics go, Redis catches up, and
the topic and Redis each hold exactly the offline detector's emissions. ``scripts/install.sh``
builds toxiproxy from the Go module proxy; without Go the test skips, saying so.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.faults.pipeline_checks import (
    emissions_of,
    expected_emissions,
    only_channels,
    paced_replay,
    points_lost,
    rows_of,
    settled_emissions,
)
from tests.integration.conftest import free_port

pytestmark = pytest.mark.fault
CHANNELS = {"P-1": "SMAP", "D-7": "MSL", "G-7": "SMAP"}
PARTITION_S = 20.0
TOXIPROXY = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tmstream/toxiproxy/v2.5.0/server"
)


class Toxiproxy:
    def __init__(self, api: str) -> None:
        self.api = api

    def call(self, method: str, path: str, body: dict[str, object] | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.api}{path}", data=data, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def partition(self, proxy: str) -> None:
        for stream in ("upstream", "downstream"):
            self.call("POST", f"/proxies/{proxy}/toxics", {"name": f"cut-{stream}", "type": "timeout",
                      "stream": stream, "attributes": {"timeout": 0}})  # fmt: skip

    def heal(self, proxy: str) -> None:
        for stream in ("upstream", "downstream"):
            self.call("DELETE", f"/proxies/{proxy}/toxics/cut-{stream}")


@contextmanager
def toxiproxy(folder: Path) -> Iterator[Toxiproxy]:
    if not TOXIPROXY.is_file():
        pytest.skip(f"toxiproxy is not built at {TOXIPROXY} (scripts/install.sh builds it with Go)")
    port = free_port()
    with (folder / "toxiproxy.log").open("wb") as log:
        process = subprocess.Popen([str(TOXIPROXY), "-host", "127.0.0.1", "-port", str(port)],
                                   stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    proxy = Toxiproxy(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                proxy.call("GET", "/version")
                break
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None, "toxiproxy did not start"
                time.sleep(0.2)
        yield proxy
    finally:
        process.kill()
        process.wait()


def test_a_partition_from_redis_holds_no_alarm_and_loses_none(pipeline, stack, fault_table) -> None:
    settings = pipeline.settings
    widths = {channel: rows_of(settings, channel).shape[1] for channel in CHANNELS}
    only_channels(pipeline.folder / "config", pipeline.run_id, CHANNELS, widths)
    expected = set().union(*(expected_emissions(settings, c, s) for c, s in CHANNELS.items()))
    direct = pipeline.env["TMSTREAM_REDIS_URL"]
    with toxiproxy(pipeline.folder) as proxy:
        listen = free_port()
        upstream = f"127.0.0.1:{stack.redis.port}"
        proxy.call(
            "POST", "/proxies", {"name": "redis", "listen": f"127.0.0.1:{listen}", "upstream": upstream}
        )
        pipeline.env["TMSTREAM_REDIS_URL"] = f"redis://127.0.0.1:{listen}/{pipeline.redis_db}"
        pipeline.start_worker("w1")
        pipeline.env["TMSTREAM_REDIS_URL"] = direct  # the test itself reads Redis directly
        pipeline.wait_ready("w1")
        with paced_replay(pipeline, CHANNELS, 150) as replay:  # ~57 s: the partition lands mid-stream
            pipeline.wait_for(lambda: len(pipeline.redis_events()) > 0, 120, "emissions in Redis")
            proxy.partition("redis")
            cut = time.monotonic()
            in_redis, on_topic = len(pipeline.redis_events()), len(pipeline.topic_events())
            time.sleep(PARTITION_S)
            during_topic = len(pipeline.topic_events())
            during_redis = len(pipeline.redis_events())
            proxy.heal("redis")
            healed = time.monotonic()
            replay.finish(timeout=300)
            figures = settled_emissions(pipeline, expected, 300, wait_on_redis=True)
            caught_up = time.monotonic() - healed
        lost_points = points_lost(pipeline, CHANNELS)
    retries = pipeline.metric("w1", "tmstream_sink_retries_total", sink="redis")
    fault_table(
        scenario=f"network partition worker↔Redis for {PARTITION_S:.0f} s (toxiproxy black hole)",
        kill_points=1,
        after_emissions=int(in_redis > 0),
        points_lost=lost_points,
        recover_s=caught_up,
        **figures,
    )
    assert during_topic > on_topic, "no alarm reached the topic while Redis was cut off"
    assert during_redis <= in_redis + 1, "Redis was written during the partition"  # one in flight
    assert retries > 0 and lost_points == 0
    assert len(emissions_of(pipeline.redis_events())) == len(expected)
    print(f"redis partition: {figures}; topic {on_topic} → {during_topic} emissions during the "
          f"{time.monotonic() - cut:.0f} s cut, Redis {in_redis} → {during_redis}; caught up "
          f"{caught_up:.1f} s after the heal, {retries:.0f} retries")  # fmt: skip
