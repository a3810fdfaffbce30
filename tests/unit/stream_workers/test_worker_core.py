"""The worker core's recovery protocol, driven through in-memory ports.

Oracle: one uninterrupted core over the same records. Every faulted run (a kill at many seeded
points after emissions exist, a hand-over between two workers, a corrupt snapshot) must leave the
same emissions on the anomalies topic and in the event sink, none twice.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from model_store.exceptions import ModelNotFound, RegistryUnavailable
from producers.channel_spec import ChannelSpec
from producers.messages import TelemetryMessage
from stream_workers import scoring
from stream_workers.channel_stream import ChannelStream
from stream_workers.events import AnomalyEvent
from stream_workers.metrics import WorkerMetrics
from stream_workers.ports import Partition, RecordRef
from stream_workers.scoring import StreamScorer
from stream_workers.sinks.kafka_sink import EMISSION_HEADER, AnomalyTopicSink
from stream_workers.thresholding.parameters import ThresholdParameters
from stream_workers.worker_core import CoreConfig, WorkerCore
from tests.unit.stream_workers.memory_ports import (
    MemoryEventSink,
    MemoryLog,
    PreviousValuePredictor,
    TinyModel,
)

PARAMS = ThresholdParameters(batch_size=10, window_size=5, smoothing_perc=0.2, error_buffer=3, l_s=8)
FEATURES = 2
ROWS = 400
CHANNELS = {"A-1": 11, "B-2": 12}  # channel -> seed of its telemetry
CONFIG = CoreConfig("state", "deadletter", snapshot_every=40, idle_close_s=5.0)


def topic_of(channel: str) -> str:
    return f"telemetry.test.{channel}"


def telemetry(seed: int) -> np.ndarray:
    """A noisy sine with clear spikes: several anomalies per channel, the last in the tail."""
    rng = np.random.default_rng(seed)
    values = 0.3 * np.sin(np.arange(ROWS) / 9) + rng.normal(0, 0.02, ROWS)
    for start in rng.choice(np.arange(80, ROWS - 20, 40), size=4, replace=False):
        values[start : start + 3] += rng.choice([-1, 1]) * 0.9
    values[ROWS - 6 : ROWS - 4] += 0.9  # after the last full threshold batch: only idle close finds it
    return np.column_stack([values, np.zeros(ROWS)])


def publish(log: MemoryLog) -> None:
    for channel, seed in CHANNELS.items():
        for index, row in enumerate(telemetry(seed)):
            message = TelemetryMessage(
                channel=channel,
                spacecraft="TEST",
                index=index,
                event_time_ms=1_000 * index,
                values=row.tolist(),
            )
            log.append(topic_of(channel), channel.encode(), message.to_bytes())


class Models:
    def __init__(self, missing: Sequence[str] = ()) -> None:
        self.missing = set(missing)

    def get(self, channel: str) -> TinyModel:
        if channel in self.missing:
            raise ModelNotFound(f"no champion for {channel}")
        return TinyModel("1", PARAMS.l_s, FEATURES)


def spec(channel: str) -> ChannelSpec | None:
    if channel not in CHANNELS:
        return None
    return ChannelSpec(channel, "TEST", FEATURES, topic_of(channel), "registry")


async def inline(function: Callable[[], object]) -> object:
    return function()


@dataclass
class Worker:
    core: WorkerCore
    metrics: WorkerMetrics
    registry: CollectorRegistry
    clock: list[float]

    def value(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)


def worker(log: MemoryLog, sink: MemoryEventSink, models: Models | None = None) -> Worker:
    registry = CollectorRegistry()
    metrics = WorkerMetrics.on(registry)
    clock = [0.0]
    scorer = StreamScorer(
        PARAMS, models or Models(), PreviousValuePredictor(), spec, metrics,  # type: ignore[arg-type]
        clock=lambda: 1_000_000.0, monotonic=lambda: clock[0],
    )  # fmt: skip
    core = WorkerCore(
        scorer, CONFIG, sender=log, reader=log,
        emission_log=AnomalyTopicSink("anomalies", log, log, metrics),
        sinks=[sink], channel_states=sink, channel_spec=spec, metrics=metrics, offload=inline,  # type: ignore[arg-type]
    )  # fmt: skip
    return Worker(core, metrics, registry, clock)


async def deliver(
    w: Worker, log: MemoryLog, positions: dict[str, int], stop: dict[str, int], batch: int
) -> None:
    """Deliver each channel's records from ``positions`` up to ``stop`` in partition runs, as Faust does."""
    while any(positions[c] < stop[c] for c in positions):
        records: list[RecordRef] = []
        for channel in positions:
            tp = Partition(topic_of(channel), 0)
            end = min(stop[channel], positions[channel] + batch)
            records += log.read_range(tp, positions[channel], end)
            positions[channel] = end
        await w.core.process(records)


async def finish(w: Worker, log: MemoryLog) -> None:
    w.clock[0] += CONFIG.idle_close_s + 1
    await w.core.close_idle(log.highwater)


def emitted(log: MemoryLog) -> list[bytes]:
    return [r.value or b"" for r in log.records("anomalies")]


def by_channel(payloads: Sequence[bytes]) -> dict[str, list[bytes]]:
    """Emissions per channel in order: channels advance independently, so only that order is fixed."""
    found: dict[str, list[bytes]] = {}
    for payload in payloads:
        found.setdefault(AnomalyEvent.from_bytes(payload).channel, []).append(payload)
    return found


def emission_keys(log: MemoryLog) -> list[str]:
    return [dict(r.headers)[EMISSION_HEADER].decode() for r in log.records("anomalies")]


async def straight_run() -> tuple[MemoryLog, MemoryEventSink]:
    log, sink = MemoryLog(), MemoryEventSink()
    publish(log)
    w = worker(log, sink)
    await w.core.assigned(len(CHANNELS))
    await deliver(w, log, dict.fromkeys(CHANNELS, 0), dict.fromkeys(CHANNELS, ROWS), batch=25)
    await finish(w, log)
    return log, sink


@pytest.fixture(scope="module")
def oracle() -> tuple[MemoryLog, MemoryEventSink]:
    return asyncio.run(straight_run())


def first_emission_offset(oracle_log: MemoryLog, channel: str) -> int:
    """The telemetry offset after which ``channel`` has its first emission."""
    first = next(
        AnomalyEvent.from_bytes(v)
        for v in emitted(oracle_log)
        if AnomalyEvent.from_bytes(v).channel == channel
    )
    return first.end_index


def test_the_oracle_has_several_anomalies_per_channel(oracle: tuple[MemoryLog, MemoryEventSink]) -> None:
    log, sink = oracle
    events = [AnomalyEvent.from_bytes(v) for v in emitted(log)]
    for channel in CHANNELS:
        mine = [e for e in events if e.channel == channel]
        assert len({e.event_id for e in mine}) >= 2, channel
        assert {e.status for e in mine} >= {"closed"}
    assert len(emission_keys(log)) == len(set(emission_keys(log)))
    assert [e.to_bytes() for e in sink.events] == emitted(log)


@pytest.mark.parametrize("seed", range(12))
def test_a_kill_after_emissions_changes_no_emission(
    oracle: tuple[MemoryLog, MemoryEventSink], seed: int
) -> None:
    """kill -9 (no revoke, no last snapshot) at a seeded point after the first emission; the next
    worker resumes from a committed offset at or before the kill: restore, catch-up, redelivery."""
    rng = random.Random(seed)
    oracle_log, oracle_sink = oracle

    async def scenario() -> tuple[MemoryLog, MemoryEventSink, Worker]:
        log, sink = MemoryLog(), MemoryEventSink()
        publish(log)
        first = worker(log, sink)
        await first.core.assigned(len(CHANNELS))
        kill = {c: rng.randrange(first_emission_offset(oracle_log, c) + 1, ROWS) for c in CHANNELS}
        await deliver(first, log, dict.fromkeys(CHANNELS, 0), kill, batch=rng.choice([1, 7, 25]))
        committed = {c: rng.randrange(max(0, kill[c] - 60), kill[c] + 1) for c in CHANNELS}
        second = worker(log, sink)
        await second.core.assigned(len(CHANNELS))
        await deliver(second, log, committed, dict.fromkeys(CHANNELS, ROWS), batch=rng.choice([3, 25]))
        await finish(second, log)
        return log, sink, second

    log, sink, _ = asyncio.run(scenario())
    assert by_channel(emitted(log)) == by_channel(emitted(oracle_log))
    assert by_channel([e.to_bytes() for e in sink.events]) == by_channel(emitted(oracle_log))
    assert sink.states == oracle_sink.states


def test_redelivered_records_are_skipped_and_counted() -> None:
    async def scenario() -> tuple[MemoryLog, Worker]:
        log, sink = MemoryLog(), MemoryEventSink()
        publish(log)
        w = worker(log, sink)
        await w.core.assigned(len(CHANNELS))
        await deliver(w, log, {"A-1": 0}, {"A-1": 300}, batch=50)
        before = emitted(log)
        await deliver(w, log, {"A-1": 200}, {"A-1": 300}, batch=50)
        assert emitted(log) == before
        return log, w

    _, w = asyncio.run(scenario())
    assert w.value("tmstream_points_redelivered_total", spacecraft="TEST", channel="A-1") == 100
    assert w.value("tmstream_points_consumed_total", spacecraft="TEST", channel="A-1") == 300


def test_revoke_snapshots_the_channel_and_drops_its_series(oracle: tuple[MemoryLog, MemoryEventSink]) -> None:
    async def scenario() -> tuple[MemoryLog, Worker]:
        log, sink = MemoryLog(), MemoryEventSink()
        publish(log)
        w = worker(log, sink)
        await w.core.assigned(len(CHANNELS))
        await deliver(w, log, dict.fromkeys(CHANNELS, 0), dict.fromkeys(CHANNELS, 250), batch=25)
        w.core.export_lag([Partition(topic_of(c), 0) for c in CHANNELS], log.highwater)
        await w.core.revoked([Partition(topic_of("A-1"), 0)])
        await w.core.assigned(1, [Partition(topic_of("B-2"), 0)])
        return log, w

    log, w = asyncio.run(scenario())
    last = [r for r in log.records("state") if r.key == b"A-1"][-1]
    assert last.value is not None
    assert w.core.scorer.streams.get("A-1") is None and "A-1" not in w.core.owned
    for name in ("tmstream_points_consumed_total", "tmstream_last_value", "tmstream_channel_in_alarm"):
        assert w.value(name, spacecraft="TEST", channel="A-1") is None, name
        assert w.value(name, spacecraft="TEST", channel="B-2") is not None, name
    lag = "tmstream_consumer_lag_messages"
    assert w.value(lag, topic=topic_of("A-1"), partition="0") is None
    assert w.value(lag, topic=topic_of("B-2"), partition="0") == ROWS - 250


def test_an_eager_rebalance_that_gives_a_channel_back_keeps_its_counters() -> None:
    """Faust revokes every partition at a rebalance and assigns most back: a channel that stays
    keeps its series (a counter reset would look like a restart); one that moves loses them."""

    async def scenario() -> Worker:
        log, sink = MemoryLog(), MemoryEventSink()
        publish(log)
        w = worker(log, sink)
        everything = [Partition(topic_of(c), 0) for c in CHANNELS]
        await w.core.assigned(2, everything)
        await deliver(w, log, dict.fromkeys(CHANNELS, 0), dict.fromkeys(CHANNELS, 250), batch=25)
        await w.core.revoked(everything)
        await w.core.assigned(1, [Partition(topic_of("A-1"), 0)])
        return w

    w = asyncio.run(scenario())
    assert w.value("tmstream_points_consumed_total", spacecraft="TEST", channel="A-1") == 250
    assert w.value("tmstream_points_consumed_total", spacecraft="TEST", channel="B-2") is None


def test_a_channel_given_back_unseen_and_moved_at_the_next_rebalance_drops_its_series() -> None:
    """Two rebalances in a row (workers joining one by one): A-1 stays at the first and moves at
    the second before its next record reached this worker. Its series must go all the same, or
    two workers export the channel (found by the scale-out test: 1 -> 2 -> 3 workers mid-replay)."""

    async def scenario() -> Worker:
        log, sink = MemoryLog(), MemoryEventSink()
        publish(log)
        w = worker(log, sink)
        everything = [Partition(topic_of(c), 0) for c in CHANNELS]
        await w.core.assigned(2, everything)
        await deliver(w, log, dict.fromkeys(CHANNELS, 0), dict.fromkeys(CHANNELS, 250), batch=25)
        await w.core.revoked(everything)
        await w.core.assigned(2, everything)  # both given back; no record of A-1 comes before the next
        await deliver(w, log, {"B-2": 250}, {"B-2": 260}, batch=10)
        await w.core.revoked(everything)
        await w.core.assigned(1, [Partition(topic_of("B-2"), 0)])
        return w

    w = asyncio.run(scenario())
    for name in ("tmstream_points_consumed_total", "tmstream_channel_in_alarm"):
        assert w.value(name, spacecraft="TEST", channel="A-1") is None, name
    assert w.value("tmstream_points_consumed_total", spacecraft="TEST", channel="B-2") == 260


def test_an_alarm_restored_at_assignment_leaves_with_its_partition_before_the_channel_runs() -> None:
    """The new owner exports a moved channel's alarm at assignment; if the channel moves on before
    its first record there, that worker must not go on exporting it."""

    async def scenario() -> Worker:
        log, sink = MemoryLog(), MemoryEventSink()
        publish(log)
        first, second = worker(log, sink), worker(log, sink)
        a1 = Partition(topic_of("A-1"), 0)
        await first.core.assigned(1, [a1])
        await deliver(first, log, {"A-1": 0}, {"A-1": 250}, batch=25)
        await first.core.revoked([a1])
        await first.core.assigned(0, [])
        await second.core.assigned(1, [a1])
        assert second.value("tmstream_channel_in_alarm", spacecraft="TEST", channel="A-1") is not None
        await second.core.revoked([a1])
        await second.core.assigned(0, [])
        return second

    second = asyncio.run(scenario())
    assert second.value("tmstream_channel_in_alarm", spacecraft="TEST", channel="A-1") is None


class SlowAcks:
    """A sender whose acks take a turn of the event loop, as the broker's do."""

    def __init__(self, log: MemoryLog) -> None:
        self.log = log

    async def send(
        self, topic: str, key: bytes | None, value: bytes, headers: dict[str, bytes] | None = None
    ) -> Awaitable[object]:
        await asyncio.sleep(0)
        return await self.log.send(topic, key, value, headers)


def test_a_batch_waiting_for_the_lock_through_a_revoke_waits_for_the_assignment_after_it() -> None:
    """Faust hands the agent a batch fetched before a revoke while the revoke (writing its hand-over
    snapshots) holds the lock. Run as soon as the revoke lets go, it would take the revoked channel
    back before the assignment says it moved: the channel ran on at both workers (its series on
    the old one beside the new owner's, found by the scale-out test under load)."""

    async def scenario() -> Worker:
        log, sink = MemoryLog(), MemoryEventSink()
        publish(log)
        w = worker(log, sink)
        a1, b2 = Partition(topic_of("A-1"), 0), Partition(topic_of("B-2"), 0)
        await w.core.assigned(2, [a1, b2])
        await deliver(w, log, dict.fromkeys(CHANNELS, 0), dict.fromkeys(CHANNELS, 100), batch=25)
        w.core.sender = SlowAcks(log)  # type: ignore[assignment]
        revoke = asyncio.create_task(w.core.revoked([a1, b2]))
        await asyncio.sleep(0)  # the revoke holds the lock, waiting for its first snapshot's ack
        batch = asyncio.create_task(w.core.process(log.read_range(a1, 100, 110)))
        await asyncio.sleep(0)  # the batch waits for the lock
        await revoke
        await asyncio.sleep(0)
        await w.core.assigned(1, [b2])
        await batch
        return w

    w = asyncio.run(scenario())
    assert "A-1" not in w.core.owned and "A-1" not in w.core.scorer.streams
    assert w.value("tmstream_points_consumed_total", spacecraft="TEST", channel="A-1") is None


def test_two_workers_hand_a_channel_over(oracle: tuple[MemoryLog, MemoryEventSink]) -> None:
    """A-1 moves from the first worker to the second mid-stream (a rebalance); B-2 stays."""
    oracle_log, _ = oracle

    async def scenario() -> tuple[MemoryLog, MemoryEventSink]:
        log, sink = MemoryLog(), MemoryEventSink()
        publish(log)
        first, second = worker(log, sink), worker(log, sink)
        await first.core.assigned(2)
        handover = first_emission_offset(oracle_log, "A-1") + 17
        positions = dict.fromkeys(CHANNELS, 0)
        await deliver(first, log, positions, dict.fromkeys(CHANNELS, handover), batch=20)
        await first.core.revoked([Partition(topic_of("A-1"), 0)])
        await first.core.assigned(1, [Partition(topic_of("B-2"), 0)])
        await second.core.assigned(1)
        await deliver(second, log, {"A-1": positions["A-1"]}, {"A-1": ROWS}, batch=20)
        await deliver(first, log, {"B-2": positions["B-2"]}, {"B-2": ROWS}, batch=20)
        await finish(first, log)
        await finish(second, log)
        return log, sink

    log, sink = asyncio.run(scenario())
    assert by_channel(emitted(log)) == by_channel(emitted(oracle_log))
    assert len(emission_keys(log)) == len(set(emission_keys(log)))
    assert by_channel([e.to_bytes() for e in sink.events]) == by_channel(emitted(oracle_log))


def test_a_channel_handed_over_in_alarm_is_in_alarm_on_its_new_owner_before_its_next_record() -> None:
    """The old owner drops the series; the new one exports the snapshot's alarm at assignment, so a
    silent channel's critical alert neither hangs on the old worker nor flaps on the handover."""

    async def scenario() -> tuple[Worker, Worker, float | None]:
        log, sink = MemoryLog(), MemoryEventSink()
        publish(log)
        first, second = worker(log, sink), worker(log, sink)
        a1 = Partition(topic_of("A-1"), 0)
        await first.core.assigned(1, [a1])
        positions = {"A-1": 0}
        while not first.value("tmstream_channel_in_alarm", spacecraft="TEST", channel="A-1"):
            assert positions["A-1"] < ROWS, "A-1 never in alarm"
            await deliver(first, log, positions, {"A-1": positions["A-1"] + 1}, batch=1)
        await first.core.revoked([a1])
        await first.core.assigned(0, [])
        before = second.value("tmstream_channel_in_alarm", spacecraft="TEST", channel="A-1")
        await second.core.assigned(1, [a1])
        return first, second, before

    first, second, before = asyncio.run(scenario())
    assert before is None
    assert second.value("tmstream_channel_in_alarm", spacecraft="TEST", channel="A-1") == 1
    assert first.value("tmstream_channel_in_alarm", spacecraft="TEST", channel="A-1") is None
    assert "A-1" not in second.core.owned, "exported, not restored: the channel restores at its first record"


def test_snapshots_are_due_every_snapshot_every_points_and_restore_exactly() -> None:
    async def scenario() -> tuple[MemoryLog, Worker]:
        log, sink = MemoryLog(), MemoryEventSink()
        publish(log)
        w = worker(log, sink)
        await w.core.assigned(1)
        await deliver(w, log, {"A-1": 0}, {"A-1": 130}, batch=10)
        return log, w

    log, w = asyncio.run(scenario())
    snapshots = [r for r in log.records("state") if r.key == b"A-1"]
    assert len(snapshots) == 3  # at 40, 80 and 120 points
    assert w.value("tmstream_state_snapshots_total") == 3
    assert w.core.snapshot_index["A-1"] == (0, 120)
    restored = ChannelStream.restore(snapshots[-1].value or b"", PARAMS, "A-1", FEATURES)
    assert restored.next_index == 120 and restored.last_offset == 119


def restart_with_bad_snapshot(bad_snapshot: Callable[[MemoryLog], bytes | None]) -> tuple[MemoryLog, Worker]:
    """300 rows of each channel, then A-1's latest snapshot replaced, then a new worker to the end."""

    async def scenario() -> tuple[MemoryLog, Worker]:
        log, sink = MemoryLog(), MemoryEventSink()
        publish(log)
        first = worker(log, sink)
        await first.core.assigned(2)
        await deliver(first, log, dict.fromkeys(CHANNELS, 0), dict.fromkeys(CHANNELS, 300), batch=25)
        log.append("state", b"A-1", bad_snapshot(log))
        second = worker(log, sink)
        await second.core.assigned(2)
        await deliver(second, log, dict.fromkeys(CHANNELS, 300), dict.fromkeys(CHANNELS, ROWS), batch=25)
        await finish(second, log)
        return log, second

    return asyncio.run(scenario())


@pytest.mark.parametrize("payload", [b"not zlib at all", b"", b"x\x9c\x03\x00\x00\x00\x00\x01"])
def test_a_corrupt_snapshot_is_counted_and_the_channel_rebuilt_from_its_topic(
    oracle: tuple[MemoryLog, MemoryEventSink], payload: bytes
) -> None:
    log, second = restart_with_bad_snapshot(lambda _: payload)
    assert second.value("tmstream_state_snapshots_rejected_total", reason="corrupt") == 1
    assert by_channel(emitted(log)) == by_channel(emitted(oracle[0]))


def test_a_snapshot_of_another_channel_is_rejected(oracle: tuple[MemoryLog, MemoryEventSink]) -> None:
    log, second = restart_with_bad_snapshot(
        lambda log: [r for r in log.records("state") if r.key == b"B-2"][-1].value
    )
    assert second.value("tmstream_state_snapshots_rejected_total", reason="wrong_channel") == 1
    assert by_channel(emitted(log)) == by_channel(emitted(oracle[0]))


def test_a_tombstone_resets_the_channel() -> None:
    async def scenario() -> Worker:
        log, sink = MemoryLog(), MemoryEventSink()
        publish(log)
        first = worker(log, sink)
        await first.core.assigned(1)
        await deliver(first, log, {"A-1": 0}, {"A-1": 100}, batch=25)
        log.append("state", b"A-1", None)
        second = worker(log, sink)
        await second.core.assigned(1)
        return second

    assert "A-1" not in asyncio.run(scenario()).core.snapshots


def test_idle_close_waits_for_a_drained_partition_then_closes_open_anomalies(
    oracle: tuple[MemoryLog, MemoryEventSink],
) -> None:
    async def scenario() -> tuple[list[AnomalyEvent], list[AnomalyEvent], Worker]:
        log, sink = MemoryLog(), MemoryEventSink()
        publish(log)
        w = worker(log, sink)
        await w.core.assigned(2)
        await deliver(w, log, dict.fromkeys(CHANNELS, 0), dict.fromkeys(CHANNELS, ROWS), batch=25)
        w.clock[0] += CONFIG.idle_close_s + 1
        await w.core.close_idle(lambda tp: ROWS + 5)  # records still waiting: not idle
        busy = [AnomalyEvent.from_bytes(v) for v in emitted(log)]
        await w.core.close_idle(log.highwater)
        return busy, [AnomalyEvent.from_bytes(v) for v in emitted(log)], w

    busy, after, w = asyncio.run(scenario())
    still_open = {e.event_id for e in busy} - {e.event_id for e in busy if e.status == "closed"}
    assert len(still_open) == len(CHANNELS)  # the tail spikes: found, not yet closed
    closing = after[len(busy) :]
    assert {e.event_id for e in closing if e.status == "closed"} == still_open
    assert [e.to_bytes() for e in after] == emitted(oracle[0])
    for channel in CHANNELS:
        assert w.value("tmstream_channel_in_alarm", spacecraft="TEST", channel=channel) == 0


def test_a_channel_without_a_model_is_unscored_and_others_go_on(
    oracle: tuple[MemoryLog, MemoryEventSink],
) -> None:
    oracle_log, _ = oracle

    async def scenario() -> tuple[MemoryLog, Worker]:
        log, sink = MemoryLog(), MemoryEventSink()
        publish(log)
        w = worker(log, sink, Models(missing=["A-1"]))
        await w.core.assigned(2)
        await deliver(w, log, dict.fromkeys(CHANNELS, 0), dict.fromkeys(CHANNELS, ROWS), batch=25)
        await finish(w, log)
        return log, w

    log, w = asyncio.run(scenario())
    unscored = w.value("tmstream_points_unscored_total", spacecraft="TEST", channel="A-1", reason="no_model")
    assert unscored == ROWS - PARAMS.l_s
    b_only = [v for v in emitted(oracle_log) if AnomalyEvent.from_bytes(v).channel == "B-2"]
    assert emitted(log) == b_only


def test_dead_letters_keep_the_record_and_its_origin() -> None:
    async def scenario() -> MemoryLog:
        log, sink = MemoryLog(), MemoryEventSink()
        bad = log.append(topic_of("A-1"), b"A-1", b"{not json")
        tombstone = log.append(topic_of("A-1"), b"A-1", None)
        w = worker(log, sink)
        await w.core.assigned(1)
        await w.core.process([bad, tombstone])
        return log

    letters = asyncio.run(scenario()).records("deadletter")
    assert [dict(r.headers)["reason"] for r in letters] == [b"malformed_json", b"malformed_json"]
    assert letters[0].value == b"{not json" and dict(letters[0].headers)["source_offset"] == b"0"


def test_records_of_a_revoked_partition_delivered_after_the_revoke_are_left_to_the_new_owner() -> None:
    """Faust hands the agent records it fetched before a revoke: scoring them would bring the
    channel back beside its new owner (emissions twice, late snapshots)."""

    async def scenario() -> tuple[MemoryLog, Worker, int, int]:
        log, sink = MemoryLog(), MemoryEventSink()
        publish(log)
        w = worker(log, sink)
        a1, b2 = Partition(topic_of("A-1"), 0), Partition(topic_of("B-2"), 0)
        await w.core.assigned(2, [a1, b2])
        await deliver(w, log, dict.fromkeys(CHANNELS, 0), dict.fromkeys(CHANNELS, 200), batch=25)
        await w.core.revoked([a1])
        await w.core.assigned(1, [b2])
        states = len([r for r in log.records("state") if r.key == b"A-1"])
        emissions = len(emitted(log))
        await deliver(w, log, dict.fromkeys(CHANNELS, 200), dict.fromkeys(CHANNELS, ROWS), batch=25)
        assert len([r for r in log.records("state") if r.key == b"A-1"]) == states
        return log, w, emissions, len(emitted(log))

    log, w, before, after = asyncio.run(scenario())
    assert "A-1" not in w.core.owned and "A-1" not in w.core.scorer.streams
    # its series left with the partition, and nothing scored here brought them back
    assert w.value("tmstream_points_consumed_total", spacecraft="TEST", channel="A-1") is None
    assert w.value("tmstream_points_consumed_total", spacecraft="TEST", channel="B-2") == ROWS
    assert all(AnomalyEvent.from_bytes(v).channel == "B-2" for v in emitted(log)[before:]) and after > before


class RegistryAway(Models):
    """The registry stops answering for a while (a stopped MLflow server), for some channels."""

    def __init__(self, channels: Sequence[str]) -> None:
        super().__init__()
        self.away = False
        self.channels = set(channels)

    def get(self, channel: str) -> TinyModel:
        if self.away and channel in self.channels:
            raise RegistryUnavailable(f"the registry did not resolve {channel}")
        return super().get(channel)


def test_rows_wait_for_a_registry_that_is_away_and_are_scored_when_it_answers(
    oracle: tuple[MemoryLog, MemoryEventSink],
) -> None:
    """A-1's model cannot be had for 150 rows past its first emission: its rows are held, not
    left unscored, and every emission is the uninterrupted run's."""
    oracle_log, _ = oracle
    away_from = first_emission_offset(oracle_log, "A-1") + 3

    async def scenario() -> tuple[MemoryLog, Worker]:
        log, sink = MemoryLog(), MemoryEventSink()
        publish(log)
        models = RegistryAway(["A-1"])
        w = worker(log, sink, models)
        await w.core.assigned(len(CHANNELS))
        positions = dict.fromkeys(CHANNELS, 0)
        await deliver(w, log, positions, dict.fromkeys(CHANNELS, away_from), batch=25)
        models.away = True
        await deliver(w, log, positions, dict.fromkeys(CHANNELS, away_from + 150), batch=25)
        assert w.core.scorer.streams["A-1"].pending >= 150 and "A-1" in w.core.scorer.held
        models.away = False
        await deliver(w, log, positions, dict.fromkeys(CHANNELS, ROWS), batch=25)
        await finish(w, log)
        return log, w

    log, w = asyncio.run(scenario())
    assert by_channel(emitted(log)) == by_channel(emitted(oracle_log))
    assert w.value("tmstream_points_scored_total", spacecraft="TEST", channel="A-1") == ROWS - PARAMS.l_s
    assert w.core.scorer.held == set()


def test_past_the_hold_limit_the_rows_are_unscored_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scoring, "MAX_HELD_ROWS", 40)

    async def scenario() -> Worker:
        log, sink = MemoryLog(), MemoryEventSink()
        publish(log)
        models = RegistryAway(["A-1"])
        models.away = True
        w = worker(log, sink, models)
        await w.core.assigned(len(CHANNELS))
        await deliver(w, log, dict.fromkeys(CHANNELS, 0), dict.fromkeys(CHANNELS, 300), batch=25)
        return w

    w = asyncio.run(scenario())
    unscored = w.value(
        "tmstream_points_unscored_total", spacecraft="TEST", channel="A-1", reason="model_error"
    )
    assert unscored is not None and unscored > 0
    assert w.core.scorer.streams["A-1"].pending <= 40 + 25
    assert w.value("tmstream_points_scored_total", spacecraft="TEST", channel="B-2") == 300 - PARAMS.l_s


def test_records_delivered_between_an_eager_revoke_and_the_assignment_that_gives_them_back_are_scored(
    oracle: tuple[MemoryLog, MemoryEventSink],
) -> None:
    """Faust revokes every partition, delivers what it had fetched, then assigns most back: those
    records are not fetched again, so the core waits for the assignment before it decides."""
    oracle_log, _ = oracle

    async def scenario() -> tuple[MemoryLog, bool]:
        log, sink = MemoryLog(), MemoryEventSink()
        publish(log)
        w = worker(log, sink)
        everything = [Partition(topic_of(c), 0) for c in CHANNELS]
        await w.core.assigned(2, everything)
        positions = dict.fromkeys(CHANNELS, 0)
        await deliver(w, log, positions, dict.fromkeys(CHANNELS, 200), batch=25)
        await w.core.revoked(everything)
        late = asyncio.create_task(deliver(w, log, positions, dict.fromkeys(CHANNELS, 225), batch=25))
        await asyncio.sleep(0.01)
        waited = not late.done()
        await w.core.assigned(2, everything)
        await late
        await deliver(w, log, positions, dict.fromkeys(CHANNELS, ROWS), batch=25)
        await finish(w, log)
        return log, waited

    log, waited = asyncio.run(scenario())
    assert waited, "the records were decided on before the assignment"
    assert by_channel(emitted(log)) == by_channel(emitted(oracle_log))


def test_records_of_a_partition_added_before_the_assignment_handler_ran_are_scored() -> None:
    """Faust resumes a new partition before its assignment handlers finish: its records are this
    worker's, never a revoked partition's (a partition-count increase lost 899 points so)."""

    async def scenario() -> Worker:
        log, sink = MemoryLog(), MemoryEventSink()
        publish(log)
        w = worker(log, sink)
        await w.core.assigned(1, [Partition(topic_of("A-1"), 0)])
        await deliver(w, log, {"A-1": 0}, {"A-1": 200}, batch=25)
        # B-2's partition arrives before the handler that would list it
        await deliver(w, log, {"B-2": 0}, {"B-2": 200}, batch=25)
        return w

    w = asyncio.run(scenario())
    assert w.value("tmstream_points_consumed_total", spacecraft="TEST", channel="B-2") == 200
