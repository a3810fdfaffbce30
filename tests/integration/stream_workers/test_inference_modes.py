"""The hybrid worker through Kafka: a channel measured stateful (A-1, one LSTM step per point) and
one measured windowed (P-1) both predict what the 2018 run predicted, to 1e-5.

Oracle: the 2018 ``y_hat`` shipped with the data set. The replay stops at several rows (``--until-
index``, then ``--resume``); at each stop every point before it is scored, and the worker's
``tmstream_last_prediction`` is the prediction of the row before the stop.
"""

from __future__ import annotations

import json
import urllib.request

import numpy as np

from model_store.registry import ModelRegistry
from tests.integration.conftest import Pipeline

CHANNELS = {"A-1": ("SMAP", "stateful"), "P-1": ("SMAP", "windowed")}
STOPS = (251, 900, 2000, 3333, 5001, 7777)


def test_a_stateful_and_a_windowed_channel_predict_the_2018_y_hat(pipeline: Pipeline, reference_dir) -> None:
    registry = ModelRegistry(pipeline.settings)
    for channel, (_, mode) in CHANNELS.items():
        assert registry.load(registry.resolve(channel)).inference_mode == mode
    y_hat = {channel: np.load(reference_dir / "y_hat" / f"{channel}.npy").ravel() for channel in CHANNELS}
    port = pipeline.start_worker()
    pipeline.wait_ready()
    for stop in STOPS:
        sent = pipeline.tmstream(
            "replay", "--channels", ",".join(CHANNELS), "--until-index", str(stop), "--resume", "--max"
        )
        assert sent.returncode == 0, sent.stderr
        for channel in CHANNELS:

            def through(channel: str = channel, scored: int = stop - 250) -> bool:
                return pipeline.metric("w1", "tmstream_points_scored_total", channel=channel) == scored

            pipeline.wait_for(through, 120, f"{channel} scored through row {stop - 1}")
            predicted = pipeline.metric("w1", "tmstream_last_prediction", channel=channel)
            assert abs(predicted - y_hat[channel][stop - 1 - 250]) <= 1e-5, (channel, stop)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/models", timeout=5) as page:
        inference = json.loads(page.read())["inference"]
    for channel, (_, mode) in CHANNELS.items():
        assert inference[channel]["mode"] == mode, inference
        assert "train rows" in inference[channel]["why"]
    assert pipeline.metric("w1", "tmstream_inference_mode_switches_total") == 0
