"""The MLflow tracking server (a real ``mlflow server`` process) stopped for 60 s mid-stream.

The worker reads the registry over HTTP from a server of this test's own, on the session's
registry database. Once emissions exist the server is stopped (its whole process group), and a
channel the worker has never seen (G-7) starts during the outage: its model cannot be had, so its
rows are held (``StreamScorer._hold``), not left unscored. The cached champions of P-1 and D-7 go on
scoring, the cache's refreshes fail and are logged, ``/ready`` says the registry is away. After 60
s the server starts again: every row is scored, none is unscored, and every emission on the topic
and in Redis is the offline detector's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from model_store.registry import tracking_uri
from tests.faults.pipeline_checks import (
    expected_emissions,
    only_channels,
    paced_replay,
    points_lost,
    rows_of,
    settled_emissions,
)
from tests.integration.conftest import free_port

pytestmark = pytest.mark.fault
FIRST = {"P-1": "SMAP", "D-7": "MSL"}
DURING = {"G-7": "SMAP"}
OUTAGE_S = 60


class MlflowServer:
    def __init__(self, backend: str, folder: Path) -> None:
        self.backend, self.folder, self.port = backend, folder, free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> None:
        log = (self.folder / "mlflow-server.log").open("ab")
        command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", self.backend,
                   "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.folder / "mlflow-server.log").read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"mlflow server not up in {timeout} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None


@contextmanager
def mlflow_server(backend: str, folder: Path) -> Iterator[MlflowServer]:
    server = MlflowServer(backend, folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def ready(pipeline, name: str) -> dict[str, object]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{pipeline.ports[name]}/ready", timeout=10) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:  # 503 while not ready, with the same body
        return json.loads(exc.read())


def test_a_stopped_registry_delays_scoring_and_loses_nothing(pipeline, fault_table) -> None:
    channels = {**FIRST, **DURING}
    settings = pipeline.settings
    widths = {channel: rows_of(settings, channel).shape[1] for channel in channels}
    only_channels(pipeline.folder / "config", pipeline.run_id, channels, widths)
    expected = set().union(*(expected_emissions(settings, c, s) for c, s in channels.items()))
    with mlflow_server(tracking_uri(settings), pipeline.folder) as server:
        pipeline.env["TMSTREAM_MLFLOW_TRACKING_URI"] = server.url
        pipeline.env["TMSTREAM_MODEL_REFRESH_SECONDS"] = "5"  # refreshes meet the outage
        pipeline.start_worker("w1")
        pipeline.wait_ready("w1")
        with paced_replay(pipeline, FIRST, 80) as first:
            pipeline.wait_for(lambda: len(pipeline.topic_events()) > 0, 120, "the first emission")
            before = len(pipeline.topic_events())
            server.stop()
            stopped = time.monotonic()
            with paced_replay(pipeline, DURING, 80) as during:
                pipeline.wait_for(lambda: ready(pipeline, "w1")["ready"] is False, 30, "/ready to say so")
                pipeline.wait_for(
                    lambda: "G-7: " in pipeline.log("w1") and "holding its rows" in pipeline.log("w1"),
                    30,
                    "G-7's rows held",
                )
                time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped)))
                assert pipeline.workers["w1"].poll() is None, pipeline.log("w1")[-3000:]
                server.start()
                back = time.monotonic()
                pipeline.wait_for(lambda: ready(pipeline, "w1")["ready"] is True, 60, "/ready again")
                recovered = time.monotonic() - back
                first.finish(timeout=300)
                during.finish(timeout=300)
            figures = settled_emissions(pipeline, expected, 300)
            lost_points = points_lost(pipeline, channels)
    unscored = pipeline.metric("w1", "tmstream_points_unscored_total")
    failed_loads = pipeline.metric("w1", "tmstream_model_cache_load_failures_total")
    log = pipeline.log("w1")
    fault_table(
        scenario=f"MLflow server stopped {OUTAGE_S} s (a new channel starts during it)",
        kill_points=1,
        after_emissions=int(before > 0),
        points_lost=lost_points,
        recover_s=recovered,
        **figures,
    )
    assert failed_loads > 0, "the outage never met the worker's registry"
    assert lost_points == 0 and unscored == 0, f"{unscored} points unscored"
    assert "G-7: the registry answered; scoring" in log, log[-3000:]
    print(f"registry outage: {figures}, {before} emissions before the stop, ready {recovered:.1f} s "
          "after the server was back")  # fmt: skip
