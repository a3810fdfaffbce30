"""The worker's hold on its partitions, as far as the process itself can tell.

A worker frozen past its group session (SIGSTOP, a VM stall, a debugger) is evicted, and another
worker takes its channels over and re-derives their emissions. When the frozen one resumes, its
batch in flight would carry on writing to the anomalies topic, Redis and the state topic beside
the new owner: duplicates the new owner's de-duplication never saw. The process cannot be told
it was evicted before its next heartbeat, but it can tell that it was not running: the event
loop ticks ``LoopLease.tick`` every fraction of a second, and a gap longer than half the session
timeout means its membership is in doubt. From then on ``check`` raises ``LeaseLost`` before
every write, until an assignment proves membership again (``renew``); the worker exits without
acknowledging its batch, as for any failed batch.

A pause that falls between the check and the write itself still lets that one write through: only
a transactional producer fences that (not built; docs/RELIABILITY.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable


class LeaseLost(Exception):
    """The process was not running for longer than its lease allows: it must not write."""

    def __init__(self, gap_s: float, limit_s: float) -> None:
        super().__init__(f"the worker was frozen for {gap_s:.1f} s (over {limit_s:.1f} s, half its group "
                         "session): its partitions may have moved, so it writes nothing more")  # fmt: skip
        self.gap_s = gap_s


class LoopLease:
    def __init__(self, limit_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit_s = limit_s
        self.clock = clock
        self.last = clock()
        self.lapsed: float | None = None  # the gap that broke the lease, until the next renewal

    def tick(self) -> None:
        """Called by the event loop every ``limit_s / 10`` or so."""
        now = self.clock()
        gap = now - self.last
        if gap > self.limit_s and self.lapsed is None:
            self.lapsed = gap
        self.last = now

    def renew(self) -> None:
        """The group assigned partitions to this member just now: it is a member again."""
        self.last, self.lapsed = self.clock(), None

    def check(self) -> None:
        """``LeaseLost`` when the loop stood still past the limit since the last renewal — counting
        the gap up to now, which a resumed process meets before its first tick."""
        gap = max(self.lapsed or 0.0, self.clock() - self.last)
        if gap > self.limit_s:
            raise LeaseLost(gap, self.limit_s)
