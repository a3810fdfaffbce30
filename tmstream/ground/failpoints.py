"""Fail points: named places in the worker where a fault test can kill or freeze the process.

A fault proves something only where the claim matters — after an alarm reached the topic and
before Redis, after both sinks and before the snapshot, while a snapshot is in flight — and at a
moment a test cannot hit from outside by timing. The worker core calls its ``fault_point`` port at
those places; in production the port does nothing. ``TMSTREAM_FAILPOINTS`` (read once, by the
worker's wiring) arms some:

    emission.sent_to_topic@2                     the 2nd emission this process sent to the topic
    snapshot.queued@1>emission.sent_to_all@3     the 1st snapshot queued after the 3rd emission
    emission.sent_to_topic@2:stop                the same place, but SIGSTOP (a zombie)

Each armed point kills the process with SIGKILL when its count is reached: no handler, no flush,
no revoke, exactly like ``kill -9`` from outside. With ``:stop`` it sends itself SIGSTOP instead:
frozen mid-write until the test sends SIGCONT, as a paused VM or a debugger would leave it.
"""

from __future__ import annotations

import os
import re
import signal
from collections import Counter
from dataclasses import dataclass

from tmstream.ground.exceptions import ConfigError

VARIABLE = "TMSTREAM_FAILPOINTS"
_TRIGGER = re.compile(r"(?P<point>[a-z_.]+)@(?P<count>[1-9][0-9]*)")
SIGNALS = {"kill": signal.SIGKILL, "stop": signal.SIGSTOP}


@dataclass(frozen=True)
class Trigger:
    point: str
    count: int
    after: tuple[str, int] | None = None  # counts start once this point has been hit that often
    action: str = "kill"  # a key of SIGNALS


def parse(spec: str) -> list[Trigger]:
    """``a@n`` or ``a@n>b@m``, each with an optional ``:stop``, separated by ``;``; ``ConfigError``
    naming the bad part."""
    triggers = []
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        trigger, _, action = part.partition(":")
        if action and action not in SIGNALS:
            raise ConfigError(f"{VARIABLE}: {part!r} has action {action!r}, not one of {sorted(SIGNALS)}")
        pieces = trigger.split(">")
        matches = [_TRIGGER.fullmatch(piece.strip()) for piece in pieces]
        if len(pieces) > 2 or not all(matches):
            raise ConfigError(f"{VARIABLE}: {part!r} is not point@count or point@count>point@count")
        point, count = matches[0]["point"], int(matches[0]["count"])  # type: ignore[index]
        after = (matches[1]["point"], int(matches[1]["count"])) if len(matches) == 2 else None  # type: ignore[index]
        triggers.append(Trigger(point, count, after, action or "kill"))
    return triggers


class FailPoints:
    """The worker core's ``fault_point`` port: counts hits and signals the process when one is due."""

    def __init__(self, triggers: list[Trigger]) -> None:
        self.triggers = triggers
        self.hits: Counter[str] = Counter()
        self.counted: Counter[Trigger] = Counter()  # hits of each trigger's point since it was armed

    @classmethod
    def from_environment(cls) -> FailPoints:
        return cls(parse(os.environ.get(VARIABLE, "")))

    def __call__(self, point: str) -> None:
        if not self.triggers:
            return
        self.hits[point] += 1
        for trigger in self.triggers:
            if trigger.point != point:
                continue
            if trigger.after is not None and self.hits[trigger.after[0]] < trigger.after[1]:
                continue
            self.counted[trigger] += 1
            if self.counted[trigger] == trigger.count:
                os.kill(os.getpid(), SIGNALS[trigger.action])
