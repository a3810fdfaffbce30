"""``StreamScorer.accept`` on generated bad records mixed with good ones (no Kafka, no model).

Every bad record becomes a dead letter with its own reason and leaves the channel's stream as it
was; every good one is appended. The same strategies feed the real worker in tests/faults.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from model_store.exceptions import ModelNotFound
from producers.channel_spec import ChannelSpec
from stream_workers.metrics import WorkerMetrics
from stream_workers.scoring import RecordRef, StreamScorer
from stream_workers.thresholding.parameters import ThresholdParameters
from tests.unit.reliability.telemetry_strategies import Channel, defects, interleave

D14 = Channel("D-14", "MSL", 55)
SPEC = ChannelSpec("D-14", "MSL", 55, "telemetry.msl.D-14", "data")


class NoModels:
    """accept() never needs a model; scoring would say so."""

    def get(self, channel: str):
        raise ModelNotFound(channel)


class NoEngine:
    def predict_series(self, weights, rows):
        raise AssertionError("accept() must not predict")


def scorer() -> tuple[StreamScorer, CollectorRegistry]:
    registry = CollectorRegistry()
    found = StreamScorer(
        ThresholdParameters(),
        NoModels(),
        NoEngine(),
        lambda name: SPEC if name == SPEC.channel else None,
        WorkerMetrics.on(registry),
    )
    return found, registry


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(st.lists(st.one_of(st.none(), defects(D14, frozenset({"D-14"}))), min_size=1, max_size=60))
def test_each_bad_record_is_a_dead_letter_with_its_reason(plan) -> None:
    records = interleave(plan, D14, lambda index: [index / 10.0] + [0.0] * 54)
    scorer_, registry = scorer()
    goods = 0
    for offset, record in enumerate(records):
        letter = scorer_.accept(RecordRef(SPEC.topic, 0, offset, record.key, record.value))
        assert (letter.reason if letter else None) == record.reason, (record, letter)
        if letter is not None:
            assert letter.record.value == record.value and letter.detail
        else:
            goods += 1
        stream = scorer_.streams.get("D-14")
        assert ((stream.next_index or 0) if stream else 0) == goods
    consumed = registry.get_sample_value(
        "tmstream_points_consumed_total", {"spacecraft": "MSL", "channel": "D-14"}
    )
    assert (consumed or 0) == goods
