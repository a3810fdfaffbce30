"""The worker's costs besides the engine's step loop, each measured alone in one process.

No stack needed: the worker's own classes on real records of the NASA split (SMAP P-1 and A-1, the
2018 weights of P-1), best of five runs (``best_seconds``):

- **decode**: ``TelemetryMessage.from_bytes`` (JSON parse, schema check, strict validation);
- **accept**: ``StreamScorer.accept`` (decode, key, registry, width, finiteness and range checks,
  redelivery and index rules, the row appended, the per-point metric);
- **metric per point**: ``WorkerMetrics.point_consumed`` alone;
- **window rebuild**: ``ChannelStream.take_work`` for one new row (the 250 kept rows stacked);
- **input projection** of the 251 rows a one-window micro-batch recomputes, against that window's
  whole prediction on the narrow path (``_Plan.series``);
- **exposition**: the worker's ``/metrics`` page (``generate_latest``) with N channels' series,
  with and without the ``_created`` samples (the worker disables them).
"""

from __future__ import annotations

import os
import time
from functools import partial
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest

from benchmarks._harness import best_seconds

RECORDS = 2_000
EXPOSITION_CHANNELS = (82, 1_000, 10_000)


def run() -> dict[str, Any]:
    from model_store.engine import InferenceEngine
    from model_store.keras2_h5 import read_keras2_h5
    from producers.channel_spec import ChannelSpec
    from producers.dataset import TelemanomDataset
    from producers.messages import TelemetryMessage, encode_points, message_prefix
    from stream_workers.channel_stream import ChannelStream
    from stream_workers.metrics import WorkerMetrics
    from stream_workers.ports import RecordRef
    from stream_workers.scoring import StreamScorer
    from stream_workers.thresholding.parameters import ThresholdParameters
    from tmstream.ground.settings import load_settings

    settings = load_settings({"environment": "testing"})
    dataset = TelemanomDataset(settings.data_dir)
    rows = dataset.load("P-1")[: RECORDS + 260].astype(np.float64)
    payloads = encode_points(message_prefix("P-1", "SMAP"), 0, int(time.time() * 1000), rows)
    topic = "telemetry.smap.P-1"
    records = [RecordRef(topic, 0, i, b"P-1", payload) for i, payload in enumerate(payloads)]
    spec = ChannelSpec("P-1", "SMAP", 25, topic, "data")
    params = ThresholdParameters()

    decode = best_seconds(lambda: [TelemetryMessage.from_bytes(p) for p in payloads[:RECORDS]]) / RECORDS

    def accept_all() -> None:
        scorer = StreamScorer(params, None, None, {"P-1": spec}.get, WorkerMetrics.on(CollectorRegistry()))  # type: ignore[arg-type]
        for record in records[:RECORDS]:
            scorer.accept(record)

    accept = best_seconds(accept_all) / RECORDS
    metrics = WorkerMetrics.on(CollectorRegistry())

    def count_points() -> None:
        for _ in range(RECORDS):
            metrics.point_consumed("SMAP", "P-1")

    metric = best_seconds(count_points) / RECORDS

    stream = ChannelStream("P-1", "SMAP", 25, params)
    for index, row in enumerate(rows[:251]):
        stream.append(index, row.tolist(), 0, index)

    def rebuild() -> None:
        stream.append(stream.next_index or 0, rows[0].tolist(), 0, 0)
        stream.take_work()

    def rebuilds() -> None:
        for _ in range(200):
            rebuild()

    rebuild_s = best_seconds(rebuilds) / 200

    engine = InferenceEngine(threads=1)
    weights = read_keras2_h5(settings.data_dir / "reference-2018" / "models" / "P-1.h5", "P-1")
    plan = engine._plan(weights)
    span = np.ascontiguousarray(rows[:251], dtype=np.float32)
    plan.series(span, 250, 1, engine.narrow_windows)  # compiled / cache loaded
    window_s = best_seconds(lambda: plan.series(span, 250, 1, engine.narrow_windows), 20)
    projection_s = best_seconds(lambda: np.dot(span, plan.input_kernel_t.T) + plan.first_bias[:, 0], 20)
    engine.close()

    exposition: dict[str, dict[str, float]] = {}
    for count in EXPOSITION_CHANNELS:
        exposition[str(count)] = {}
        for created in (True, False):
            import prometheus_client

            if created:
                prometheus_client.enable_created_metrics()
            else:
                prometheus_client.disable_created_metrics()
            registry = CollectorRegistry()
            fleet = WorkerMetrics.on(registry)
            latest = dict.fromkeys(
                ("value", "prediction", "error", "smoothed_error", "threshold", "in_alarm"), 0.0
            )
            for n in range(count):
                channel = f"X-{n}"
                fleet.channel_started("SMAP", channel)
                fleet.point_consumed("SMAP", channel)
                fleet.scored("SMAP", channel, 1, 0.01)
                fleet.channel_latest("SMAP", channel, latest)
            page = generate_latest(registry)
            seconds = best_seconds(partial(generate_latest, registry), 3)
            key = "with_created" if created else "without_created"
            exposition[str(count)][key + "_ms"] = round(seconds * 1000, 1)
            exposition[str(count)][key + "_bytes"] = len(page)
    return {
        "cpus": os.cpu_count(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "decode_us_per_record": round(decode * 1e6, 2),
        "accept_us_per_record": round(accept * 1e6, 2),
        "metric_us_per_point": round(metric * 1e6, 2),
        "window_rebuild_us_per_channel_batch": round(rebuild_s * 1e6, 2),
        "one_window_ms": round(window_s * 1000, 3),
        "input_projection_ms": round(projection_s * 1000, 3),
        "input_projection_share": round(projection_s / window_s, 3),
        "exposition": exposition,
    }
