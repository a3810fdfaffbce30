"""The scorer's stateful inference: a channel measured stateful costs one LSTM step per point and
still finds what the 2018 run finds; batching, snapshots and the online guard change nothing.

Oracles: the streaming detector over the 2018 predictions, and over ``guarded_series`` (one
uninterrupted offline pass of the engine, not the scorer's incremental carry).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from evaluation.detections import stream_detections
from model_store.engine import InferenceEngine
from model_store.inference_mode import ModeVerdict
from model_store.keras2_h5 import read_keras2_h5
from model_store.mode_measurement import guarded_series
from model_store.weights import LstmWeights
from producers.dataset import TelemanomDataset
from stream_workers.channel_stream import ChannelStream
from stream_workers.events import AnomalyEvent
from stream_workers.scoring import InferencePolicy, StreamScorer
from tests.unit.model_store.test_stateful_inference import remembering
from tests.unit.stream_workers.test_stream_scorer import PARAMS, Models, make_scorer, records, run

STATEFUL = ModeVerdict("stateful", 1e-7, 1000, 1e-5)


class CountingEngine(InferenceEngine):
    """The engine, counting the windows and carried steps it is asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.windows = 0
        self.steps = 0

    def predict_series_many(self, items):  # type: ignore[no-untyped-def]
        self.windows += sum(len(rows) - weights.l_s for weights, rows in items)
        return super().predict_series_many(items)

    def carry_many(self, items):  # type: ignore[no-untyped-def]
        self.steps += sum(len(rows) for _, rows, _ in items)
        return super().carry_many(items)


def scorer_for(
    dataset: TelemanomDataset,
    models: Models,
    policy: InferencePolicy = "hybrid",
    tolerance: float = 1e-5,
    engine: InferenceEngine | None = None,
) -> StreamScorer:
    return make_scorer(dataset, models, engine, policy=policy, tolerance=tolerance)


def closed(events: list[AnomalyEvent]) -> list[tuple[int, int]]:
    return [(e.start_index, e.end_index) for e in events if e.status == "closed"]


def emissions(events: list[AnomalyEvent]) -> list[tuple[str, str, int, int]]:
    return [(e.event_id, e.status, e.start_index, e.end_index) for e in events]


@pytest.mark.parametrize("channel", ["A-1", "D-14"])
def test_a_stateful_channel_finds_what_the_2018_predictions_find(
    nasa: TelemanomDataset, reference_dir: Path, channel: str
) -> None:
    info = nasa.channels[channel]
    test = nasa.load(channel)
    weights = read_keras2_h5(reference_dir / "models" / f"{channel}.h5", channel).with_version(
        "1", verdict=STATEFUL
    )
    engine = CountingEngine()
    scorer = scorer_for(nasa, Models(lambda _: weights), engine=engine)
    events = run(scorer, records(channel, info.spacecraft, test), chunk=333) + scorer.close_idle(0)
    reference = np.load(reference_dir / "y_hat" / f"{channel}.npy")
    expected = stream_detections(channel, reference, test[:, 0], PARAMS, backfill_warmup=True)
    assert expected and [(d.start, d.end) for d in expected] == closed(events)[: len(expected)]
    assert scorer.modes[channel]["mode"] == "stateful"
    scored = len(test) - PARAMS.l_s
    # one step per point, plus the first window's 249 and the guard's window every 250 points
    assert engine.steps <= scored + PARAMS.l_s
    assert engine.windows == len(range(250, len(test), 250))


@pytest.fixture
def remembering_models(small_model: Callable[[str], LstmWeights]) -> Models:
    return Models(lambda channel: remembering(small_model(channel)).with_version("3", verdict=STATEFUL))


def guard_tolerance(engine: InferenceEngine, weights: LstmWeights, rows: np.ndarray) -> float:
    """A tolerance the guard's checks pass at first and fail later in ``rows``."""
    drift = np.abs(engine.predict_series(weights, rows) - engine.predict_series_carried(weights, rows))[::250]
    return float(np.sort(drift)[len(drift) // 2])


@pytest.mark.parametrize("chunk", [1, 97, 1000])
def test_any_batching_and_the_guard_give_the_offline_pass(
    synth: TelemanomDataset, remembering_models: Models, chunk: int
) -> None:
    channel = "E-1"
    test = synth.load(channel)
    weights = remembering_models.get(channel)
    engine = InferenceEngine()
    tolerance = guard_tolerance(engine, weights, test)
    predictions, switched = guarded_series(engine, weights, test, tolerance=tolerance)
    assert switched is not None and switched < len(test) - 1000
    expected = stream_detections(channel, predictions, test[:, 0], PARAMS, backfill_warmup=True)
    assert expected, "no detection would make the comparison vacuous"

    scorer = scorer_for(synth, remembering_models, tolerance=tolerance)
    events = run(scorer, records(channel, "SMAP", test), chunk=chunk) + scorer.close_idle(0)
    assert [(d.start, d.end) for d in expected] == closed(events)[: len(expected)]
    assert scorer.metrics.mode_switches.labels("verify_drift")._value.get() == 1
    assert scorer.modes[channel]["mode"] == "windowed"
    assert f"at row {switched}" in scorer.modes[channel]["why"]


def test_a_snapshot_carries_the_state_bit_for_bit(
    synth: TelemanomDataset, remembering_models: Models
) -> None:
    channel = "E-1"
    batch = records(channel, "SMAP", synth.load(channel))
    straight = scorer_for(synth, remembering_models, tolerance=1.0)
    expected = run(straight, batch, chunk=400) + straight.close_idle(0)
    assert expected

    first = scorer_for(synth, remembering_models, tolerance=1.0)
    events = run(first, batch[:1700], chunk=400)
    assert first.streams[channel].carry is not None
    second = scorer_for(synth, remembering_models, tolerance=1.0)
    stream = first.streams[channel]
    second.streams[channel] = ChannelStream.restore(stream.snapshot(), PARAMS, channel, stream.features)
    assert np.array_equal(second.streams[channel].carry, stream.carry)  # type: ignore[arg-type]
    events += run(second, batch[1700:], chunk=400) + second.close_idle(0)
    assert emissions(events) == emissions(expected)


def test_a_snapshot_written_before_carried_states_restores_without_one(
    synth: TelemanomDataset, remembering_models: Models
) -> None:
    channel = "E-1"
    scorer = scorer_for(synth, remembering_models)
    run(scorer, records(channel, "SMAP", synth.load(channel))[:600], chunk=600)
    state = json.loads(zlib.decompress(scorer.streams[channel].snapshot()))
    for key in ("carry", "carry_next", "carry_version", "switched_at", "switched_version"):
        del state[key]
    state["version"] = 2
    restored = ChannelStream.restore(zlib.compress(json.dumps(state).encode()), PARAMS, channel, 25)
    assert restored.carry is None and restored.next_index == 600


@pytest.mark.parametrize(("policy", "verdict", "mode"), [
    ("approximate", None, "stateful"),
    ("windowed", STATEFUL, "windowed"),
    ("hybrid", None, "windowed"),
])  # fmt: skip
def test_the_policy_decides_before_the_verdict(
    synth: TelemanomDataset,
    small_model: Callable[[str], LstmWeights],
    policy: InferencePolicy,
    verdict: ModeVerdict | None,
    mode: str,
) -> None:
    weights = small_model("E-1").with_version("1", verdict=verdict)
    scorer = scorer_for(synth, Models(lambda _: weights), policy=policy)
    run(scorer, records("E-1", "SMAP", synth.load("E-1"))[:400], chunk=400)
    assert scorer.modes["E-1"]["mode"] == mode
