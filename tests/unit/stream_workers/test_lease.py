"""The worker's lease: a process frozen past half its group session writes nothing more."""

from __future__ import annotations

import asyncio

import pytest

from stream_workers.lease import LeaseLost, LoopLease
from stream_workers.ports import Partition
from tests.unit.stream_workers.memory_ports import MemoryEventSink, MemoryLog
from tests.unit.stream_workers.test_worker_core import (
    CHANNELS,
    ROWS,
    deliver,
    emitted,
    publish,
    topic_of,
    worker,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_ticking_loop_keeps_the_lease_however_long_it_runs() -> None:
    clock = Clock()
    lease = LoopLease(7.5, clock)
    for _ in range(1000):
        clock.now += 0.75
        lease.tick()
        lease.check()


def test_a_freeze_past_the_limit_is_met_before_the_first_tick_and_after_it() -> None:
    clock = Clock()
    lease = LoopLease(7.5, clock)
    clock.now += 20  # SIGSTOP … SIGCONT
    with pytest.raises(LeaseLost, match=r"frozen for 20\.0 s"):
        lease.check()  # the batch in flight resumes before the loop ticks
    lease.tick()
    clock.now += 0.1
    with pytest.raises(LeaseLost):
        lease.check()  # and after: the gap stays on record
    lease.renew()  # a new assignment: a member again
    lease.check()


def test_a_freeze_under_the_limit_is_not_a_lost_lease() -> None:
    clock = Clock()
    lease = LoopLease(7.5, clock)
    clock.now += 7.0
    lease.tick()
    lease.check()


def test_a_core_that_loses_its_lease_mid_batch_writes_nothing_more() -> None:
    """The check runs before every write: the topic, each sink, the snapshot, the channel view. The
    lease is lost right after the third emission reached the topic, before it reaches the sink."""

    async def scenario() -> tuple[MemoryLog, MemoryEventSink, list[int]]:
        log, sink = MemoryLog(), MemoryEventSink()
        publish(log)
        w = worker(log, sink)
        state_at_loss: list[int] = []

        def check() -> None:
            if len(emitted(log)) >= 3:
                state_at_loss.append(len(log.records("state")))
                raise LeaseLost(20.0, 7.5)

        w.core.check_lease = check
        await w.core.assigned(len(CHANNELS))
        with pytest.raises(LeaseLost):
            await deliver(w, log, dict.fromkeys(CHANNELS, 0), dict.fromkeys(CHANNELS, ROWS), batch=25)
        with pytest.raises(LeaseLost):
            await w.core.revoked([Partition(topic_of(c), 0) for c in CHANNELS])  # no hand-over snapshot
        return log, sink, state_at_loss

    log, sink, state_at_loss = asyncio.run(scenario())
    assert len(emitted(log)) == 3 and len(sink.events) == 2
    assert len(log.records("state")) == state_at_loss[0] > 0, "a snapshot after the lease was lost"
