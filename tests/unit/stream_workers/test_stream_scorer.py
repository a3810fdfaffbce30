"""The worker's core, fed the real telemetry records of a channel, finds what the 2018 models find.

Oracle: the streaming detector run over the 2018 reference predictions (``stream_detections``);
the scorer computes its own predictions with the inference engine from the reference weights.
What does not depend on the 2018 run (bad records, redeliveries, snapshots, unscored channels,
batching) is fed the synthetic set and its small models (tests/conftest.py), with or without NASA.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from evaluation.detections import stream_detections
from model_store.engine import InferenceEngine
from model_store.exceptions import ModelNotFound
from model_store.keras2_h5 import read_keras2_h5
from model_store.weights import LstmWeights
from producers.channel_spec import ChannelSpec
from producers.dataset import TelemanomDataset
from producers.messages import TelemetryMessage
from stream_workers.channel_stream import ChannelStream
from stream_workers.events import AnomalyEvent
from stream_workers.metrics import WorkerMetrics
from stream_workers.scoring import RecordRef, StreamScorer
from stream_workers.thresholding.parameters import ThresholdParameters

PARAMS = ThresholdParameters()


class Models:
    """Models by channel from a loader, kept once loaded (tests replace entries)."""

    def __init__(self, load: Callable[[str], LstmWeights]) -> None:
        self.load = load
        self.loaded: dict[str, LstmWeights] = {}

    def get(self, channel: str) -> LstmWeights:
        if channel not in self.loaded:
            self.loaded[channel] = self.load(channel)
        return self.loaded[channel]


class ReferenceModels(Models):
    def __init__(self, folder: Path) -> None:
        super().__init__(self.read)
        self.folder = folder

    def read(self, channel: str) -> LstmWeights:
        path = self.folder / f"{channel}.h5"
        if not path.exists():
            raise ModelNotFound(f"no model for {channel}")
        return read_keras2_h5(path, channel)


def no_model(channel: str) -> LstmWeights:
    raise ModelNotFound(f"no model for {channel}")


def make_scorer(
    dataset: TelemanomDataset, models: Models, engine: InferenceEngine | None = None, **options: Any
) -> StreamScorer:
    """A scorer of ``dataset``'s channels; ``options``: the scorer's policy, guard period, tolerance."""

    def spec(channel: str) -> ChannelSpec | None:
        info = dataset.channels.get(channel)
        if info is None:
            return None
        width = 25 if info.spacecraft == "SMAP" else 55
        return ChannelSpec(
            channel, info.spacecraft, width, f"telemetry.{info.spacecraft.lower()}.{channel}", "data"
        )

    return StreamScorer(
        PARAMS, models, engine or InferenceEngine(), spec, WorkerMetrics.on(CollectorRegistry()), **options
    )


def records(channel: str, spacecraft: str, rows: np.ndarray, start_offset: int = 0) -> list[RecordRef]:
    topic = f"telemetry.{spacecraft.lower()}.{channel}"
    now = int(time.time() * 1000)
    out = []
    for index, row in enumerate(rows):
        message = TelemetryMessage(
            channel=channel,
            spacecraft=spacecraft,
            index=index,
            event_time_ms=now + index,
            values=row.tolist(),
        )
        out.append(RecordRef(topic, 0, start_offset + index, channel.encode(), message.to_bytes()))
    return out


def run(scorer: StreamScorer, batch: list[RecordRef], chunk: int) -> list[AnomalyEvent]:
    events: list[AnomalyEvent] = []
    for start in range(0, len(batch), chunk):
        for record in batch[start : start + chunk]:
            assert scorer.accept(record) is None
        events += scorer.score()
    return events


@pytest.mark.parametrize("channel", ["D-14", "A-1", "P-1"])
def test_scorer_matches_the_streaming_detector_on_reference_predictions(
    nasa: TelemanomDataset, reference_dir: Path, channel: str
) -> None:
    info = nasa.channels[channel]
    test = nasa.load(channel)
    scorer = make_scorer(nasa, ReferenceModels(reference_dir / "models"))
    events = run(scorer, records(channel, info.spacecraft, test), chunk=333)
    events += scorer.close_idle(0)
    reference = np.load(reference_dir / "y_hat" / f"{channel}.npy")
    expected = stream_detections(channel, reference, test[:, 0], PARAMS, backfill_warmup=True)
    closed = [(e.start_index, e.end_index) for e in events if e.status == "closed"]
    assert [(d.start, d.end) for d in expected] == closed[: len(expected)]
    assert {e.event_id for e in events} == {e.event_id for e in events if e.status == "closed"}
    assert (
        scorer.metrics.points_scored.labels(info.spacecraft, channel)._value.get() == len(test) - PARAMS.l_s
    )


@pytest.fixture
def small_models(small_model: Callable[[str], LstmWeights]) -> Models:
    return Models(small_model)


@pytest.mark.parametrize("channel", ["E-1", "D-14"])  # windows before the end; one at the end
def test_scorer_matches_the_streaming_detector_on_synthetic_channels(
    synth: TelemanomDataset, small_models: Models, channel: str
) -> None:
    info = synth.channels[channel]
    test = synth.load(channel)
    scorer = make_scorer(synth, small_models)
    events = run(scorer, records(channel, info.spacecraft, test), chunk=333)
    events += scorer.close_idle(0)
    predictions = InferenceEngine().predict_series(small_models.get(channel), test)
    expected = stream_detections(channel, predictions, test[:, 0], PARAMS, backfill_warmup=True)
    assert expected, "no detection would make the comparison vacuous"
    closed = [(e.start_index, e.end_index) for e in events if e.status == "closed"]
    assert [(d.start, d.end) for d in expected] == closed[: len(expected)]
    assert {e.event_id for e in events} == {e.event_id for e in events if e.status == "closed"}
    assert (
        scorer.metrics.points_scored.labels(info.spacecraft, channel)._value.get() == len(test) - PARAMS.l_s
    )


def test_snapshot_restore_mid_stream_changes_nothing(synth: TelemanomDataset, small_models: Models) -> None:
    channel = "D-14"
    info = synth.channels[channel]
    batch = records(channel, info.spacecraft, synth.load(channel))
    straight = make_scorer(synth, small_models)
    expected = run(straight, batch, chunk=500) + straight.close_idle(0)
    assert expected

    first = make_scorer(synth, small_models)
    events = run(first, batch[:1300], chunk=500)
    snapshot = first.streams[channel].snapshot()
    second = make_scorer(synth, small_models)
    features = first.streams[channel].features
    second.streams[channel] = ChannelStream.restore(snapshot, PARAMS, channel, features)
    redelivered = batch[1000:1300]
    for record in redelivered:
        assert second.accept(record) is None
    assert second.pending_windows() == 0
    events += run(second, batch[1300:], chunk=500) + second.close_idle(0)
    strip = [(e.event_id, e.status, e.start_index, e.end_index) for e in events]
    assert strip == [(e.event_id, e.status, e.start_index, e.end_index) for e in expected]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "malformed_json"),
        (
            b'{"schema":"tmstream.telemetry.v0","channel":"D-14","spacecraft":"MSL","index":0,'
            b'"event_time_ms":0,"values":[0.1]}',
            "wrong_schema",
        ),
        (
            json.dumps(
                {
                    "schema": "tmstream.telemetry.v1",
                    "channel": "D-14",
                    "spacecraft": "MSL",
                    "index": 0,
                    "event_time_ms": 0,
                    "values": [0.1, 0.2],
                }
            ).encode(),
            "wrong_width",
        ),
        (
            json.dumps(
                {
                    "schema": "tmstream.telemetry.v1",
                    "channel": "Q-99",
                    "spacecraft": "MSL",
                    "index": 0,
                    "event_time_ms": 0,
                    "values": [0.1],
                }
            ).encode(),
            "unknown_channel",
        ),
    ],
)
def test_bad_records_become_dead_letters(
    synth: TelemanomDataset, small_models: Models, payload: bytes, reason: str
) -> None:
    scorer = make_scorer(synth, small_models)
    key = b"Q-99" if reason == "unknown_channel" else b"D-14"
    letter = scorer.accept(RecordRef("telemetry.msl.D-14", 0, 7, key, payload))
    assert letter is not None and letter.reason == reason
    assert letter.record.value == payload and letter.record.offset == 7


def test_duplicate_and_out_of_order_indices(synth: TelemanomDataset, small_models: Models) -> None:
    scorer = make_scorer(synth, small_models)
    batch = records("D-14", "MSL", synth.load("D-14")[:10])
    for record in batch[:5]:
        assert scorer.accept(record) is None
    again = RecordRef(batch[4].topic, 0, 100, batch[4].key, batch[4].value)
    older = RecordRef(batch[1].topic, 0, 101, batch[1].key, batch[1].value)
    duplicate, out_of_order = scorer.accept(again), scorer.accept(older)
    assert duplicate is not None and duplicate.reason == "duplicate_index"
    assert out_of_order is not None and out_of_order.reason == "out_of_order_index"
    assert scorer.accept(batch[3]) is None  # offset 3 was processed: a redelivery, skipped silently
    assert scorer.streams["D-14"].next_index == 5


def test_channel_without_model_is_counted_unscored(synth: TelemanomDataset, small_models: Models) -> None:
    scorer = make_scorer(synth, small_models)
    scorer.models = Models(no_model)
    run(scorer, records("D-14", "MSL", synth.load("D-14")[:400]), chunk=400)
    assert scorer.metrics.points_unscored.labels("MSL", "D-14", "no_model")._value.get() == 150


def test_model_that_does_not_fit_the_stream_leaves_points_unscored(
    synth: TelemanomDataset, small_model: Callable[[str], LstmWeights]
) -> None:
    """A champion trained with another window length is reported, not a crash of the agent."""
    import dataclasses

    models = Models(small_model)
    scorer = make_scorer(synth, models)
    models.loaded["D-14"] = dataclasses.replace(models.get("D-14"), l_s=50)
    assert run(scorer, records("D-14", "MSL", synth.load("D-14")[:400]), chunk=400) == []
    assert scorer.metrics.points_unscored.labels("MSL", "D-14", "model_mismatch")._value.get() == 150


def _two_channels(dataset: TelemanomDataset, rows: int) -> list[RecordRef]:
    """T-10 (MSL) and P-1 (SMAP) interleaved: one micro-batch holds both architectures."""
    first = records("T-10", "MSL", dataset.load("T-10")[:rows])
    second = records("P-1", "SMAP", dataset.load("P-1")[:rows])
    return [record for pair in zip(first, second, strict=True) for record in pair]


def test_channels_of_a_batch_are_scored_together_as_if_alone(
    nasa: TelemanomDataset, reference_dir: Path
) -> None:
    scorer = make_scorer(nasa, ReferenceModels(reference_dir / "models"))
    calls: list[int] = []
    many = scorer.engine.predict_series_many

    def counted(items):  # type: ignore[no-untyped-def]
        calls.append(len(items))
        return many(items)

    scorer.engine.predict_series_many = counted  # type: ignore[method-assign]
    run(scorer, _two_channels(nasa, 300), chunk=600)
    assert calls == [2]
    latest = scorer.take_latest()
    for channel, spacecraft in (("T-10", "MSL"), ("P-1", "SMAP")):
        assert scorer.metrics.points_scored.labels(spacecraft, channel)._value.get() == 50
        reference = np.load(reference_dir / "y_hat" / f"{channel}.npy")
        assert abs(float(latest[channel]["prediction"]) - reference[49]) <= 1e-5


def test_synthetic_channels_of_a_batch_are_scored_together_as_if_alone(
    synth: TelemanomDataset, small_models: Models
) -> None:
    scorer = make_scorer(synth, small_models)
    calls: list[int] = []
    many = scorer.engine.predict_series_many

    def counted(items):  # type: ignore[no-untyped-def]
        calls.append(len(items))
        return many(items)

    scorer.engine.predict_series_many = counted  # type: ignore[method-assign]
    run(scorer, _two_channels(synth, 300), chunk=600)
    assert calls == [2]
    latest = scorer.take_latest()
    alone = InferenceEngine(threads=1)
    for channel, spacecraft in (("T-10", "MSL"), ("P-1", "SMAP")):
        assert scorer.metrics.points_scored.labels(spacecraft, channel)._value.get() == 50
        expected = alone.predict_series(small_models.get(channel), synth.load(channel)[:300])
        assert abs(float(latest[channel]["prediction"]) - expected[49]) <= 1e-6


def test_a_failing_channel_leaves_only_itself_unscored(
    synth: TelemanomDataset, small_model: Callable[[str], LstmWeights]
) -> None:
    """No model, a model that does not fit, and an engine error, each beside a channel that scores."""
    import dataclasses

    from model_store.exceptions import InputError

    batch = _two_channels(synth, 300)
    models = Models(small_model)

    scorer = make_scorer(synth, models)
    models.loaded["T-10"] = dataclasses.replace(models.get("T-10"), l_s=50)
    run(scorer, batch, chunk=600)
    assert scorer.metrics.points_unscored.labels("MSL", "T-10", "model_mismatch")._value.get() == 50
    assert scorer.metrics.points_scored.labels("SMAP", "P-1")._value.get() == 50

    class Missing(Models):
        def get(self, channel: str) -> LstmWeights:
            if channel == "P-1":
                raise ModelNotFound(channel)
            return super().get(channel)

    scorer = make_scorer(synth, Missing(small_model))
    run(scorer, batch, chunk=600)
    assert scorer.metrics.points_unscored.labels("SMAP", "P-1", "no_model")._value.get() == 50
    assert scorer.metrics.points_scored.labels("MSL", "T-10")._value.get() == 50

    scorer = make_scorer(synth, Models(small_model))
    engine = scorer.engine
    assert isinstance(engine, InferenceEngine)

    class FailsOnP1:
        def predict_series(self, weights: LstmWeights, rows: np.ndarray) -> np.ndarray:
            if weights.channel == "P-1":
                raise InputError("channel P-1: broken")
            return engine.predict_series(weights, rows)

        def predict_series_many(self, items: list[tuple[LstmWeights, np.ndarray]]) -> list[np.ndarray]:
            if any(weights.channel == "P-1" for weights, _ in items):
                raise InputError("channel P-1: broken")
            return engine.predict_series_many(items)

    scorer.engine = FailsOnP1()
    run(scorer, batch, chunk=600)
    assert scorer.metrics.points_unscored.labels("SMAP", "P-1", "model_error")._value.get() == 50
    assert scorer.metrics.points_scored.labels("MSL", "T-10")._value.get() == 50
    assert scorer.streams["P-1"].threshold is None
