"""The Kafka broker stopped and started again while a paced replay and a worker are running.

The broker is this test's own (the session's broker is shared by every test). The replay's
idempotent producer keeps retrying within its delivery timeout; the worker's consumer rejoins.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.faults.pipeline_checks import (
    expected_emissions,
    only_channels,
    paced_replay,
    rows_of,
    settled_emissions,
)
from tests.faults.private_services import private_kafka, start_and_wait

pytestmark = pytest.mark.fault
CHANNEL, SPACECRAFT = "D-14", "MSL"


def test_broker_restart_mid_replay_loses_and_repeats_nothing(pipeline, tmp_path) -> None:
    with private_kafka(tmp_path / "private") as kafka:
        pipeline.env["TMSTREAM_KAFKA_PORT"] = str(kafka.settings.kafka.port)
        pipeline.env["TMSTREAM_KAFKA_CONTROLLER_PORT"] = str(kafka.settings.kafka.controller_port)
        # The broker's absence must not look like the end of the stream (idle close).
        pipeline.env["TMSTREAM_WORKER_IDLE_CLOSE_S"] = "45"
        settings = pipeline.settings
        rows = len(rows_of(settings, CHANNEL))
        only_channels(pipeline.folder / "config", pipeline.run_id, {CHANNEL: SPACECRAFT}, {CHANNEL: 55})
        expected = expected_emissions(settings, CHANNEL, SPACECRAFT)
        pipeline.start_worker("w1")
        pipeline.wait_ready("w1")
        with paced_replay(pipeline, [CHANNEL], 50, summary=True) as replay:
            pipeline.wait_for(
                lambda: pipeline.metric("w1", "tmstream_points_scored_total") >= 100, 120, "first points"
            )
            stopped = time.monotonic()
            assert kafka.process.stop()
            back = start_and_wait(kafka, 120)
            outage = time.monotonic() - stopped
            out = replay.finish(timeout=180)
        assert json.loads(out)["points"] == {CHANNEL: rows}

        pipeline.wait_for(
            lambda: pipeline.metric("w1", "tmstream_points_scored_total") == rows - settings.model.l_s,
            180,
            "every point scored",
        )
        figures = settled_emissions(pipeline, expected, 120)
        assert pipeline.workers["w1"].poll() is None, "the worker survived the outage"
        assert pipeline.metric("w1", "tmstream_points_consumed_total") == rows
        assert pipeline.metric("w1", "tmstream_points_scored_total") == rows - settings.model.l_s
        print(f"broker-restart: {figures}, broker away {outage:.1f} s (restart {back:.1f} s), "
              f"scored {rows - settings.model.l_s}")  # fmt: skip
