"""The worker core's rules where faults land on a channel in alarm (docs/STREAM_WORKERS.md, "Gaps,
silence, restarts and model swaps", and docs/RELIABILITY.md): one channel's failure is its own, an
anomaly is closed with a reason and never left open, records are placed by (topic, partition,
offset), snapshots are checked and the most advanced one wins, and de-duplication is bounded.

The oracle is the straight run of ``test_worker_core`` (one worker, no fault): every emission of a
channel the fault does not touch must equal it byte for byte.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import zlib
from collections.abc import Callable

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from model_store.exceptions import ModelNotFound
from producers.messages import TelemetryMessage
from stream_workers.events import AnomalyEvent
from stream_workers.metrics import WorkerMetrics
from stream_workers.ports import Partition, RecordRef
from stream_workers.sinks.kafka_sink import EMISSION_HEADER, AnomalyTopicSink
from stream_workers.worker_core import POSITION_HEADER
from tests.anomaly_events import anomaly_event
from tests.unit.stream_workers.memory_ports import MemoryEventSink, MemoryLog, TinyModel
from tests.unit.stream_workers.test_worker_core import (
    CHANNELS,
    FEATURES,
    PARAMS,
    ROWS,
    Models,
    Worker,
    by_channel,
    deliver,
    emitted,
    finish,
    publish,
    straight_run,
    telemetry,
    topic_of,
    worker,
)

Oracle = tuple[MemoryLog, MemoryEventSink]


@pytest.fixture(scope="module")
def oracle() -> Oracle:
    return asyncio.run(straight_run())


def events_of(log: MemoryLog, channel: str | None = None) -> list[AnomalyEvent]:
    found = [AnomalyEvent.from_bytes(payload) for payload in emitted(log) if payload != b"{}"]
    return [e for e in found if channel is None or e.channel == channel]


def assert_every_anomaly_closed(log: MemoryLog) -> None:
    """No event left open: each event id that was emitted ends with a closed emission."""
    last: dict[str, AnomalyEvent] = {}
    for event in events_of(log):
        last[event.event_id] = event
    assert all(e.status == "closed" and e.close_reason is not None for e in last.values()), [
        (e.channel, e.start_index, e.status) for e in last.values() if e.status != "closed"
    ]


def first_open(oracle: Oracle, channel: str) -> AnomalyEvent:
    """The first anomaly of ``channel`` reported open before it closed (one in alarm for a while)."""
    return next(e for e in events_of(oracle[0], channel) if e.status == "open")


def message(channel: str, index: int, row: list[float], time_ms: int) -> bytes:
    return TelemetryMessage(
        channel=channel, spacecraft="TEST", index=index, event_time_ms=time_ms, values=row
    ).to_bytes()


def run_to_end(log: MemoryLog, sink: MemoryEventSink, w: Worker, start: dict[str, int]) -> None:
    async def rest() -> None:
        ends = {c: len(log.partitions[Partition(topic_of(c), 0)]) for c in CHANNELS}
        await deliver(w, log, dict(start), ends, batch=25)
        await finish(w, log)

    asyncio.run(rest())


class FailingModels(Models):
    """``B-2``'s champion lookup fails with an error that is no model-store error."""

    def get(self, channel: str) -> TinyModel:
        if channel == "B-2":
            raise RuntimeError("artifact download: connection reset by peer")
        return super().get(channel)


class FailingPredictor:
    """The engine fails on ``B-2``'s rows (width 2, a marker value in its second column)."""

    def predict_series(self, weights: TinyModel, rows: np.ndarray) -> np.ndarray:
        if rows[0, 1] == 7.0:
            raise FloatingPointError("kernel fault")
        return rows[weights.l_s - 1 : -1, 0].astype(np.float64)

    def predict_series_many(self, items: list[tuple[TinyModel, np.ndarray]]) -> list[np.ndarray]:
        return [self.predict_series(weights, rows) for weights, rows in items]


def test_a_failing_model_lookup_costs_no_other_channel_its_emissions(oracle: Oracle) -> None:
    log, sink = MemoryLog(), MemoryEventSink()
    publish(log)
    w = worker(log, sink, FailingModels())
    asyncio.run(w.core.assigned(2))
    run_to_end(log, sink, w, dict.fromkeys(CHANNELS, 0))
    assert by_channel(emitted(log)).get("A-1") == by_channel(emitted(oracle[0]))["A-1"]
    assert "B-2" not in by_channel(emitted(log))
    assert w.value("tmstream_points_unscored_total", spacecraft="TEST", channel="B-2", reason="channel_error")


def test_an_engine_failure_on_one_channel_costs_no_other_channel_its_emissions(oracle: Oracle) -> None:
    log, sink = MemoryLog(), MemoryEventSink()
    for channel, seed in CHANNELS.items():
        for index, row in enumerate(telemetry(seed)):
            values = [float(row[0]), 7.0 if channel == "B-2" else 0.0]
            log.append(topic_of(channel), channel.encode(), message(channel, index, values, 1_000 * index))
    w = worker(log, sink)
    w.core.scorer.engine = FailingPredictor()
    asyncio.run(w.core.assigned(2))
    run_to_end(log, sink, w, dict.fromkeys(CHANNELS, 0))
    assert by_channel(emitted(log)).get("A-1") == by_channel(emitted(oracle[0]))["A-1"]
    unscored = w.value(
        "tmstream_points_unscored_total", spacecraft="TEST", channel="B-2", reason="channel_error"
    )
    assert unscored == ROWS - PARAMS.l_s


@pytest.mark.parametrize("value", [1e39, -1e300, 3.5e38])
def test_values_past_float32_are_dead_letters_and_the_channel_goes_on(oracle: Oracle, value: float) -> None:
    log, sink = MemoryLog(), MemoryEventSink()
    publish(log)
    poison = message("A-1", 150, [value, 0.0], 150_000)
    log.partitions[Partition(topic_of("A-1"), 0)].insert(
        150, RecordRef(topic_of("A-1"), 0, 150, b"A-1", poison)
    )
    renumber(log, topic_of("A-1"))
    w = worker(log, sink)
    asyncio.run(w.core.assigned(2))
    run_to_end(log, sink, w, dict.fromkeys(CHANNELS, 0))
    letters = log.records("deadletter")
    assert [dict(r.headers)["reason"] for r in letters] == [b"out_of_range"]
    assert by_channel(emitted(log)) == by_channel(emitted(oracle[0]))


def renumber(log: MemoryLog, topic: str, partition: int = 0) -> None:
    records = log.partitions[Partition(topic, partition)]
    for offset, r in enumerate(records):
        records[offset] = RecordRef(r.topic, r.partition, offset, r.key, r.value, r.headers, r.timestamp_ms)


def test_a_record_on_another_channels_topic_is_a_dead_letter_and_both_go_on(oracle: Oracle) -> None:
    """A valid A-1 record mis-routed onto B-2's topic at a high offset: before, it moved A-1's
    redelivery guard past every later A-1 record, silencing A-1."""
    log, sink = MemoryLog(), MemoryEventSink()
    publish(log)
    b2 = log.partitions[Partition(topic_of("B-2"), 0)]
    stray = RecordRef(
        topic_of("B-2"), 0, 0, b"A-1", message("A-1", 120, telemetry(11)[120].tolist(), 120_000)
    )
    b2.insert(390, stray)
    renumber(log, topic_of("B-2"))
    w = worker(log, sink)
    asyncio.run(w.core.assigned(2))
    run_to_end(log, sink, w, dict.fromkeys(CHANNELS, 0))
    assert [dict(r.headers)["reason"] for r in log.records("deadletter")] == [b"wrong_topic"]
    assert by_channel(emitted(log)) == by_channel(emitted(oracle[0]))


def test_a_channel_moved_to_another_partition_keeps_its_points(oracle: Oracle) -> None:
    """A partition-count increase: A-1's records from row 200 on land in partition 1, at offsets
    from 0. Offsets compared without the partition dropped all of them as redeliveries."""
    log, sink = MemoryLog(), MemoryEventSink()
    publish(log)
    moved = log.partitions[Partition(topic_of("A-1"), 0)][200:]
    del log.partitions[Partition(topic_of("A-1"), 0)][200:]
    for r in moved:
        log.append(topic_of("A-1"), r.key, r.value, partition=1)
    w = worker(log, sink)

    async def scenario() -> None:
        await w.core.assigned(3)
        await deliver(w, log, dict.fromkeys(CHANNELS, 0), {"A-1": 200, "B-2": ROWS}, batch=25)
        moved_to = Partition(topic_of("A-1"), 1)
        for start in range(0, ROWS - 200, 25):
            await w.core.process(log.read_range(moved_to, start, start + 25))
        await finish(w, log)

    asyncio.run(scenario())
    assert by_channel(emitted(log)) == by_channel(emitted(oracle[0]))


def test_a_source_that_restarts_its_index_starts_a_scored_epoch(oracle: Oracle) -> None:
    """A replay --loop: A-1's rows 0..399 again, later in time. Before, every row of the second pass
    was a dead letter; now it is stream epoch 1, with its own event ids, and the first pass's
    anomaly still open at the restart is closed with ``stream_restarted``."""
    log, sink = MemoryLog(), MemoryEventSink()
    publish(log)
    for index, row in enumerate(telemetry(CHANNELS["A-1"])):
        log.append(topic_of("A-1"), b"A-1", message("A-1", index, row.tolist(), 10_000_000 + 1_000 * index))
    w = worker(log, sink)
    asyncio.run(w.core.assigned(2))
    run_to_end(log, sink, w, dict.fromkeys(CHANNELS, 0))
    assert log.records("deadletter") == []
    mine = events_of(log, "A-1")
    first = [e for e in mine if e.stream_epoch == 0]
    second = [e for e in mine if e.stream_epoch == 1]
    expected = events_of(oracle[0], "A-1")
    strip = [(e.status, e.start_index, e.end_index) for e in expected]
    assert [(e.status, e.start_index, e.end_index) for e in second] == strip
    assert {e.event_id for e in first}.isdisjoint({e.event_id for e in second})
    assert [e.close_reason for e in second if e.status == "closed"][-1] == "idle"
    assert any(e.close_reason == "stream_restarted" for e in first)
    assert_every_anomaly_closed(log)
    # snapshots go on in the new epoch (not only once its rows pass the old ones), and with them
    # the topic sink forgets the first pass's closed anomalies
    epochs = [
        json.loads(zlib.decompress(r.value or b""))["epoch"] for r in log.records("state") if r.key == b"A-1"
    ]
    assert epochs.count(1) >= (ROWS - PARAMS.l_s) // 40 - 1
    emission_log = w.core.emission_log
    assert isinstance(emission_log, AnomalyTopicSink)
    assert not {e.event_id for e in first} & set(emission_log.closed)


def test_a_restart_in_the_same_millisecond_as_the_last_row_is_an_epoch_and_a_repeat_is_not() -> None:
    """A paced replay hands a tick's points over together: the loop's row 0 can carry the last
    row's time to the millisecond (the fault suite's loop test dead-lettered such rows). The last
    row sent again with its own time is still a duplicate."""
    log, sink = MemoryLog(), MemoryEventSink()
    rows = telemetry(CHANNELS["A-1"])
    for index, row in enumerate(rows):
        log.append(topic_of("A-1"), b"A-1", message("A-1", index, row.tolist(), 1_000 * index))
    last_time = 1_000 * (ROWS - 1)
    log.append(topic_of("A-1"), b"A-1", message("A-1", ROWS - 1, rows[-1].tolist(), last_time))
    for index, row in enumerate(rows[:50]):
        log.append(topic_of("A-1"), b"A-1", message("A-1", index, row.tolist(), last_time + index // 5))
    w = worker(log, sink)
    asyncio.run(w.core.assigned(1))
    run_to_end(log, sink, w, {"A-1": 0, "B-2": 0})
    letters = log.records("deadletter")
    assert [dict(r.headers)["reason"] for r in letters] == [b"duplicate_index"]
    assert w.core.scorer.streams["A-1"].epoch == 1 and w.core.scorer.streams["A-1"].next_index == 50


def test_a_forward_gap_closes_the_open_anomaly_with_stream_gap(oracle: Oracle) -> None:
    """Rows missing just after an anomaly opened (the publisher skips NaN rows): before, the
    detector was replaced and the open event never closed."""
    opened = first_open(oracle, "B-2")
    log, sink = MemoryLog(), MemoryEventSink()
    publish(log)
    tp = Partition(topic_of("B-2"), 0)
    cut = opened.end_index + 1
    del log.partitions[tp][cut : cut + 30]
    renumber(log, tp.topic)
    w = worker(log, sink)
    asyncio.run(w.core.assigned(2))
    run_to_end(log, sink, w, dict.fromkeys(CHANNELS, 0))
    closing = [e for e in events_of(log, "B-2") if e.event_id == opened.event_id and e.status == "closed"]
    assert [e.close_reason for e in closing] == ["stream_gap"]
    assert by_channel(emitted(log))["A-1"] == by_channel(emitted(oracle[0]))["A-1"]
    assert_every_anomaly_closed(log)


class SwappedModels(Models):
    """The champion's version as ``version[0]`` says at the moment of the lookup."""

    def __init__(self, version: list[str], missing: list[bool]) -> None:
        super().__init__()
        self.version, self.gone = version, missing

    def get(self, channel: str) -> TinyModel:
        if self.gone[0]:
            raise ModelNotFound(f"no champion for {channel}")
        return TinyModel(self.version[0], PARAMS.l_s, FEATURES)


@pytest.mark.parametrize(("change", "reason"), [("swap", "model_changed"), ("unscored", "stream_gap")])
def test_a_model_swap_or_an_unscored_batch_mid_anomaly_closes_it(
    oracle: Oracle, change: str, reason: str
) -> None:
    opened = first_open(oracle, "B-2")
    version, gone = ["1"], [False]
    log, sink = MemoryLog(), MemoryEventSink()
    publish(log)
    w = worker(log, sink, SwappedModels(version, gone))

    async def scenario() -> None:
        await w.core.assigned(2)
        at = 0
        while not any(e.event_id == opened.event_id for e in events_of(log)):  # up to the open
            await deliver(w, log, dict.fromkeys(CHANNELS, at), dict.fromkeys(CHANNELS, at + 1), batch=1)
            at += 1
        if change == "swap":
            version[0] = "2"
        else:
            gone[0] = True
            await deliver(w, log, dict.fromkeys(CHANNELS, at), dict.fromkeys(CHANNELS, at + 3), batch=1)
            gone[0] = False
            at += 3
        await deliver(w, log, dict.fromkeys(CHANNELS, at), dict.fromkeys(CHANNELS, ROWS), batch=25)
        await finish(w, log)

    asyncio.run(scenario())
    closing = [e for e in events_of(log, "B-2") if e.event_id == opened.event_id and e.status == "closed"]
    assert [e.close_reason for e in closing] == [reason]
    assert_every_anomaly_closed(log)


def restart_after(write_state: Callable[[MemoryLog], None]) -> tuple[MemoryLog, Worker]:
    """300 rows of each channel, then ``write_state`` appends to the state topic (after the good
    snapshots), then a new worker to the end."""
    log, sink = MemoryLog(), MemoryEventSink()
    publish(log)
    first = worker(log, sink)

    async def scenario() -> Worker:
        await first.core.assigned(2)
        await deliver(first, log, dict.fromkeys(CHANNELS, 0), dict.fromkeys(CHANNELS, 300), batch=25)
        write_state(log)
        second = worker(log, sink)
        await second.core.assigned(2)
        await deliver(second, log, dict.fromkeys(CHANNELS, 300), dict.fromkeys(CHANNELS, ROWS), batch=25)
        await finish(second, log)
        return second

    return log, asyncio.run(scenario())


def tampered(tamper: Callable[[dict[str, object]], None]) -> Callable[[MemoryLog], None]:
    """A-1's latest snapshot written again, well-formed, with ``tamper`` applied to its state."""

    def write(log: MemoryLog) -> None:
        good = [r for r in log.records("state") if r.key == b"A-1"][-1]
        state = json.loads(zlib.decompress(good.value or b""))
        tamper(state)
        log.append("state", b"A-1", zlib.compress(json.dumps(state).encode()))

    return write


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda s: s.update(last_offset=10**9), "implausible"),  # would skip every later record
        (lambda s: s.update(next_index=-5), "implausible"),
        (lambda s: s.update(history=[[1.0, 2.0, 3.0]] * 3), "implausible"),
        (lambda s: s.update(history=[["NaN", 0.0]] * 3), "implausible"),
        (lambda s: s.update(history=None), "corrupt"),
        (lambda s: s["params"].update(p=0.5), "params_changed"),
        (lambda s: s.update(features=3), "wrong_channel"),
        (lambda s: s.update(version=99), "version"),
        (lambda s: s.update(pad="x" * (17 * 1024 * 1024)), "too_large"),
    ],
)
def test_a_poisoned_snapshot_is_rejected_and_the_channel_rebuilt(
    oracle: Oracle, tamper: Callable[[dict[str, object]], None], reason: str
) -> None:
    log, second = restart_after(tampered(tamper))
    assert second.value("tmstream_state_snapshots_rejected_total", reason=reason) == 1
    assert by_channel(emitted(log)) == by_channel(emitted(oracle[0]))


def test_a_zombies_late_snapshot_does_not_set_the_channel_back(oracle: Oracle) -> None:
    """A paused worker writes A-1's snapshot of offset 49 after its successor wrote offset 299:
    the successor's stands (the read-back takes the highest offset of a partition), so the new
    worker re-reads nothing before 300 and its emissions equal the straight run's."""

    def late_write(log: MemoryLog) -> None:
        early = next(r for r in log.records("state") if r.key == b"A-1")
        assert dict(early.headers)[POSITION_HEADER] == f"{topic_of('A-1')}|0|49".encode()
        log.append("state", b"A-1", early.value, headers=dict(early.headers))

    log, second = restart_after(late_write)
    assert second.value("tmstream_points_consumed_total", spacecraft="TEST", channel="A-1") == ROWS - 300
    assert by_channel(emitted(log)) == by_channel(emitted(oracle[0]))


def event(event_id: str, status: str, end: int) -> AnomalyEvent:
    return anomaly_event(event_id=event_id, channel="A-1", start_index=0, end_index=end, status=status)


def test_the_topic_sinks_memory_is_one_entry_per_open_anomaly_and_a_bounded_tail_of_closed() -> None:
    log = MemoryLog()
    sink = AnomalyTopicSink("anomalies", log, log, WorkerMetrics.on(CollectorRegistry()), max_closed=3)

    async def scenario() -> list[bool]:
        sent = []
        for n in range(10):
            for status, end in (("open", 5), ("updated", 6), ("updated", 7), ("closed", 7)):
                sent.append(await sink.emit(event(f"e{n}", status, end)))
        sent.append(await sink.emit(event("live", "open", 5)))
        sent.append(await sink.emit(event("live", "updated", 9)))
        sent.append(await sink.emit(event("live", "open", 5)))  # re-derived: dropped
        sent.append(await sink.emit(event("live", "updated", 8)))  # behind the latest: dropped
        sent.append(await sink.emit(event("e9", "updated", 6)))  # closed: dropped
        return sent

    sent = asyncio.run(scenario())
    assert sent == [True] * 42 + [False] * 3
    assert len(sink) == 1 + 3
    reloaded = AnomalyTopicSink("anomalies", log, log, WorkerMetrics.on(CollectorRegistry()), max_closed=3)
    assert reloaded.load() == 4
    keys = [dict(r.headers)[EMISSION_HEADER] for r in log.records("anomalies")]
    assert len(keys) == len(set(keys)) == 42


def test_an_assignment_reads_emissions_from_its_oldest_snapshot_on() -> None:
    """A long history before the snapshots is not read back; what the restore re-derives is."""
    clock = [0]
    log, sink = MemoryLog(clock_ms=lambda: clock[0]), MemoryEventSink()
    publish(log)
    for n in range(1000):  # last week's emissions of other anomalies
        log.append("anomalies", b"A-1", b"{}", headers={EMISSION_HEADER: f"old{n}:closed:5".encode()})
    clock[0] = 8 * 24 * 3600 * 1000
    first = worker(log, sink)
    first.core.clock = lambda: clock[0] / 1000

    async def scenario() -> int:
        await first.core.assigned(2, [Partition(topic_of(c), 0) for c in CHANNELS])
        await deliver(first, log, dict.fromkeys(CHANNELS, 0), dict.fromkeys(CHANNELS, 300), batch=25)
        second = worker(log, sink)
        await second.core.assigned(2, [Partition(topic_of(c), 0) for c in CHANNELS])
        emission_log = second.core.emission_log
        assert isinstance(emission_log, AnomalyTopicSink)
        return len(emission_log)

    known = asyncio.run(scenario())
    mine = {e.event_id for e in events_of(log)}
    assert known == len(mine) and known < 1000


def test_a_snapshot_lets_the_sink_forget_what_closed_a_window_before_it() -> None:
    """A long run's memory stays flat: closed anomalies ending a margin before the channel's
    snapshot row go, the rest (and every open one) stay."""
    log = MemoryLog()
    sink = AnomalyTopicSink("anomalies", log, log, WorkerMetrics.on(CollectorRegistry()))

    async def scenario() -> None:
        for n, end in enumerate((100, 900, 1500)):
            await sink.emit(event(f"c{n}", "closed", end))
        await sink.emit(event("live", "open", 1400))

    asyncio.run(scenario())
    sink.forget_closed("A-1", 1000)
    assert set(sink.closed) == {"c2"} and set(sink.open) == {"live"}
    sink.forget_closed("B-2", 10_000)  # another channel's snapshot forgets none of A-1's
    assert set(sink.closed) == {"c2"}


def test_the_core_forgets_closed_anomalies_as_it_snapshots() -> None:
    log, sink = MemoryLog(), MemoryEventSink()
    publish(log)
    w = worker(log, sink)

    async def scenario() -> None:
        await w.core.assigned(2)
        await deliver(w, log, dict.fromkeys(CHANNELS, 0), dict.fromkeys(CHANNELS, ROWS), batch=25)

    asyncio.run(scenario())
    emission_log = w.core.emission_log
    assert isinstance(emission_log, AnomalyTopicSink)
    closed = [e for e in events_of(log) if e.status == "closed"]
    last_snapshot = {c: row for c, (_, row) in w.core.snapshot_index.items()}  # where each resumes
    kept = {e.event_id for e in closed if e.end_index >= last_snapshot[e.channel] - PARAMS.window_length}
    assert set(emission_log.closed) == kept and len(kept) < len(closed)
    assert set(emission_log.open) == {e.event_id for e in events_of(log) if e.status != "closed"} - {
        e.event_id for e in closed
    }


def test_a_new_stream_epoch_lets_the_sink_forget_the_old_epochs_closed_anomalies() -> None:
    """``replay --loop``: each loop is an epoch over the same rows; an old epoch's anomalies end
    at rows the new one reaches only later, yet none of them can be re-derived any more."""
    log = MemoryLog()
    sink = AnomalyTopicSink("anomalies", log, log, WorkerMetrics.on(CollectorRegistry()))

    async def scenario() -> None:
        await sink.emit(event("old", "closed", 5000))
        await sink.emit(
            anomaly_event(event_id="new", channel="A-1", end_index=5000, status="closed", stream_epoch=1)
        )

    asyncio.run(scenario())
    sink.forget_closed("A-1", 10, epoch=1)
    assert set(sink.closed) == {"new"}
    reloaded = AnomalyTopicSink("anomalies", log, log, WorkerMetrics.on(CollectorRegistry()))
    reloaded.load()
    reloaded.forget_closed("A-1", 10, epoch=1)
    assert set(reloaded.closed) == {"new"}  # the epoch came back with the read-back


def test_a_record_near_the_size_limit_is_dead_lettered_cut_and_says_so(oracle: Oracle) -> None:
    """A 1.2 MB record with a 70 kB key (as the broker may take with a raised limit): its dead
    letter would not fit a producer request, fail on every redelivery and stop its partition."""
    log, sink = MemoryLog(), MemoryEventSink()
    publish(log)
    huge = message("A-1", 150, [0.25] * 240_000, 150_000)  # wrong width, 1.2 MB of JSON
    records = log.partitions[Partition(topic_of("A-1"), 0)]
    records.insert(150, RecordRef(topic_of("A-1"), 0, 150, b"A-1" * 24_000, huge))
    renumber(log, topic_of("A-1"))
    w = worker(log, sink)
    asyncio.run(w.core.assigned(2))
    run_to_end(log, sink, w, dict.fromkeys(CHANNELS, 0))
    [letter] = log.records("deadletter")
    headers = dict(letter.headers)
    assert len(letter.key or b"") + len(letter.value or b"") <= 900_000
    assert headers["truncated"] == b"true" and headers["original_bytes"] == str(len(huge)).encode()
    assert headers["sha256"] == hashlib.sha256(huge).hexdigest().encode()
    assert (letter.value or b"") == huge[: len(letter.value or b"")]
    assert by_channel(emitted(log)) == by_channel(emitted(oracle[0]))
