"""Scale-out on the real stack: one worker, then two in one consumer group, on the same input.

Topics have 6 partitions; the channels are one per partition number (murmur2 of the key modulo 6),
so the two workers, which Faust gives three partition numbers each, get three channels each.
The harness and its measurements are ``benchmarks/scaleout.py`` (``tmstream bench scaleout``).
"""

from __future__ import annotations

import pytest

from benchmarks.scaleout import PARTITIONS, configuration, import_models
from tmstream.ground.settings import Settings

CHANNELS = ("D-15", "D-16", "T-4", "M-4", "C-2", "T-5")  # keys in partitions 0, 1, 2, 3, 4, 5


@pytest.fixture(scope="module")
def channels(stack: Settings) -> tuple[str, ...]:
    import_models(CHANNELS)
    return CHANNELS


def test_two_workers_split_the_partitions_and_find_the_same_anomalies(stack, channels, tmp_path) -> None:
    with configuration(stack, tmp_path, 1, channels) as one:
        single = one.measure()
    with configuration(stack, tmp_path, 2, channels) as two:
        pair = two.measure()

    total_partitions = len(channels) * PARTITIONS
    assert [w.assigned_partitions for w in single.workers] == [total_partitions]
    assert [w.assigned_partitions for w in pair.workers] == [total_partitions // 2] * 2
    assert single.points_scored == pair.points_scored == pair.points_expected
    assert all(w.points_scored > 0 for w in pair.workers), pair.workers
    assert single.closed_events, "no anomaly closed: the comparison would prove nothing"
    assert pair.closed_events == single.closed_events
