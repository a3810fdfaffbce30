"""Recorded anomaly events become detections: closed ones only, each anomaly once, its last range."""

from __future__ import annotations

import pytest

from evaluation.detections import ScoredRange
from evaluation.recorded import closed_detections, read_events
from stream_workers.events import AnomalyEvent, event_id_for
from tmstream.ground.exceptions import StackError


def event(channel: str, start: int, end: int, status: str, score: float = 0.5, version: str = "1"):
    return AnomalyEvent(
        event_id=event_id_for(channel, start, version),
        channel=channel,
        spacecraft="SMAP",
        subsystem="power",
        start_index=start,
        end_index=end,
        start_time_ms=0,
        end_time_ms=0,
        score=score,
        severity="info",
        threshold=0.1,
        max_error=0.2,
        direction="high",
        model_version=version,
        detected_at_ms=0,
        status=status,
    )


def test_only_closed_events_count_and_open_ones_are_ignored():
    found = closed_detections(
        [event("P-1", 100, 150, "open"), event("P-1", 100, 180, "updated"), event("A-1", 10, 20, "open")]
    )
    assert found == {}


def test_an_anomaly_emitted_twice_counts_once_with_its_last_closed_range():
    found = closed_detections(
        [
            event("P-1", 500, 560, "open"),
            event("P-1", 500, 600, "closed", score=0.7),
            event("P-1", 100, 150, "closed", score=0.2),
            event("P-1", 500, 600, "closed", score=0.7),
            event("D-14", 1892, 2118, "closed", score=1.5),
        ]
    )
    assert found == {
        "P-1": [ScoredRange(100, 150, 0.2), ScoredRange(500, 600, 0.7)],
        "D-14": [ScoredRange(1892, 2118, 1.5)],
    }


def test_the_same_range_from_two_model_versions_is_two_anomalies():
    found = closed_detections([event("P-1", 100, 150, "closed", version=v) for v in ("1", "2")])
    assert len(found["P-1"]) == 2


def test_an_unreachable_redis_is_one_clear_error(test_settings):
    test_settings.redis.port = 1
    with pytest.raises(StackError, match=r"from redis at redis://127\.0\.0\.1:1/"):
        read_events(test_settings, "redis")
