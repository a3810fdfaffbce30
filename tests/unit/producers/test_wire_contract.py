"""The bytes production sends, as the broker would get them: ``TelemetryPublisher`` (live sources)
and the replay drive a recording stand-in for kafka-python's producer, and every record must be
valid under ``schemas/telemetry.v1.json``, decode with ``TelemetryMessage.from_bytes`` to the point
that was published (the model writes the very same bytes), and be taken by the worker's
``StreamScorer.accept``. No broker; the integration suite sends the same bytes to a real one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

import producers.clients as clients_module
import producers.replay as replay_module
from model_store.exceptions import ModelNotFound
from producers.channel_spec import ChannelSpec
from producers.dataset import TelemanomDataset
from producers.messages import FLOAT32_LIMIT, INT64_MAX, TelemetryMessage
from producers.metrics import PRODUCER_METRICS
from producers.publisher import TelemetryPublisher
from producers.replay import Replay, ReplayPlan
from stream_workers.metrics import WorkerMetrics
from stream_workers.scoring import RecordRef, StreamScorer
from stream_workers.thresholding.parameters import ThresholdParameters
from tests.unit.producers.json_strategies import FINITE
from tests.unit.producers.test_messages import VALIDATOR
from tmstream.ground.settings import Settings, load_settings


@dataclass(frozen=True)
class Sent:
    topic: str
    key: bytes
    value: bytes
    partition: int
    timestamp_ms: int


class _Acked:
    """A delivery future that has already succeeded."""

    serialized_key_size = serialized_value_size = 0

    def add_callback(self, callback: Any) -> _Acked:
        callback(self)
        return self

    def add_errback(self, errback: Any) -> _Acked:
        return self


class RecordingProducer:
    """kafka-python's ``KafkaProducer`` as the publisher uses it, keeping what it is handed."""

    def __init__(self, sent: list[Sent]) -> None:
        self.sent = sent

    def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2}

    def send(self, topic: str, *, value: bytes, key: bytes, partition: int, timestamp_ms: int) -> _Acked:
        self.sent.append(Sent(topic, key, value, partition, timestamp_ms))
        return _Acked()

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        pass


class Registry:
    def __init__(self, *specs: ChannelSpec) -> None:
        self.specs = {spec.channel: spec for spec in specs}

    def get(self, channel: str) -> ChannelSpec:
        return self.specs[channel]


@contextmanager
def recording() -> Iterator[list[Sent]]:
    """Publishers built inside send to a list (and stay out of the process-wide producer metrics)."""
    sent: list[Sent] = []
    with (
        mock.patch.object(clients_module, "KafkaProducer", lambda **options: RecordingProducer(sent)),
        mock.patch.object(PRODUCER_METRICS, "track"),
    ):
        yield sent


class NoModels:
    def get(self, channel: str) -> Any:
        raise ModelNotFound(channel)


def worker_accepts(specs: list[ChannelSpec], sent: list[Sent]) -> None:
    """Every record is taken by the worker's validation, as it would be off the topic."""
    known = {spec.channel: spec for spec in specs}
    metrics = WorkerMetrics.on(CollectorRegistry())
    # accept() never scores, so no engine
    scorer = StreamScorer(ThresholdParameters(), NoModels(), None, known.get, metrics)
    for offset, record in enumerate(sent):
        letter = scorer.accept(RecordRef(record.topic, record.partition, offset, record.key, record.value))
        assert letter is None, letter


def check_record(record: Sent, spec: ChannelSpec, index: int, values: list[float], now: int) -> None:
    assert (record.topic, record.key, record.timestamp_ms) == (spec.topic, spec.channel.encode(), now)
    VALIDATOR.validate(json.loads(record.value))
    message = TelemetryMessage.from_bytes(record.value, expected_width=spec.features)
    assert (message.channel, message.spacecraft, message.index) == (spec.channel, spec.spacecraft, index)
    assert (message.event_time_ms, message.values) == (now, values)
    assert message.to_bytes() == record.value


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings({"environment": "testing"})


ELEMENTS = {
    "lists": st.one_of(FINITE, st.integers(-(2**53), 2**53)),
    "float64": FINITE,
    "float32": st.floats(allow_nan=False, allow_infinity=False, width=32),
    "int64": st.integers(-(2**53), 2**53),
}


@st.composite
def batches(draw: st.DrawFn) -> tuple[ChannelSpec, int, Any, set[int]]:
    """A channel, a start index and rows for it (lists of numbers or an array of a numeric dtype),
    with the positions of rows holding a NaN, which must not be sent."""
    features = draw(st.integers(1, 60))
    spec = ChannelSpec(
        draw(st.text(min_size=1)), draw(st.text(min_size=1)), features, draw(st.text(min_size=1)), "data"
    )
    form = draw(st.sampled_from(sorted(ELEMENTS)))
    row = st.lists(ELEMENTS[form], min_size=features, max_size=features)
    rows: list[list[Any]] = draw(st.lists(row, min_size=1, max_size=20))
    bad = set() if form == "int64" else set(draw(st.lists(st.integers(0, len(rows) - 1), max_size=3)))
    for position in bad:
        rows[position][draw(st.integers(0, features - 1))] = float("nan")
    batch: Any = rows if form == "lists" else np.array(rows, dtype=form)
    return spec, draw(st.integers(0, INT64_MAX - len(rows))), batch, bad


@given(batches(), st.integers(0, 2**41))
def test_published_bytes_are_what_the_model_and_the_worker_read(
    settings: Settings, batch: tuple[ChannelSpec, int, Any, set[int]], now: int
) -> None:
    spec, start, rows, nan = batch
    # finite values past float32 cannot be scored (the worker holds float32 rows): not sent either
    bad = nan | {i for i, row in enumerate(rows) if any(abs(float(v)) >= FLOAT32_LIMIT for v in row)}
    with recording() as sent, TelemetryPublisher(settings, Registry(spec)) as publisher:
        rejected = publisher.publish_batch(spec.channel, start, rows, event_time_ms=now)
    assert {row.index - start for row in rejected} == bad
    expected = [(start + i, [float(v) for v in row]) for i, row in enumerate(rows) if i not in bad]
    assert len(sent) == len(expected)
    for record, (index, values) in zip(sent, expected, strict=True):
        check_record(record, spec, index, values, now)
    worker_accepts([spec], sent)


def test_publish_sends_the_same_bytes_as_publish_batch(settings: Settings) -> None:
    spec = ChannelSpec("P-1", "SMAP", 3, "telemetry.smap.P-1", "data")
    with recording() as sent, TelemetryPublisher(settings, Registry(spec)) as publisher:
        publisher.publish("P-1", 7, [0.25, 0, 1], event_time_ms=1_700_000_000_000)
        publisher.publish_batch("P-1", 7, [[0.25, 0, 1]], event_time_ms=1_700_000_000_000)
    assert sent[0] == sent[1]
    check_record(sent[0], spec, 7, [0.25, 0.0, 1.0], 1_700_000_000_000)


def test_the_replay_sends_valid_messages_the_worker_accepts(
    synth: TelemanomDataset, synth_dir: Path, tmp_path: Path
) -> None:
    settings = load_settings(
        {"environment": "testing", "data_dir": str(synth_dir), "state_dir": str(tmp_path / "state")}
    )
    specs = [
        ChannelSpec(name, synth.channels[name].spacecraft, width, f"t.{name}", "data")
        for name, width in (("P-1", 25), ("D-14", 55))
    ]
    with recording() as sent, mock.patch.object(replay_module, "ensure_topics"):
        summary = Replay(settings, Registry(*specs), ReplayPlan(specs)).run()
    by_channel = {spec.channel: [r for r in sent if r.key == spec.channel.encode()] for spec in specs}
    for spec in specs:
        rows = synth.load(spec.channel)
        records = by_channel[spec.channel]
        assert summary.points[spec.channel] == len(records) == len(rows)
        for index, record in enumerate(records):
            check_record(record, spec, index, rows[index].tolist(), record.timestamp_ms)
    worker_accepts(specs, sent)
