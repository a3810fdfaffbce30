"""One anomaly event for tests that need an emission but not a detector: P-1, open, rows 100-150."""

from __future__ import annotations

from typing import Any

from stream_workers.events import AnomalyEvent, event_id_for


def anomaly_event(**changes: Any) -> AnomalyEvent:
    """The event with ``changes`` applied; a ``closed`` one gets ``close_reason="ended"`` unless given."""
    fields: dict[str, Any] = {
        "event_id": event_id_for("P-1", 100, "1"),
        "channel": "P-1",
        "spacecraft": "SMAP",
        "subsystem": "power",
        "start_index": 100,
        "end_index": 150,
        "start_time_ms": 0,
        "end_time_ms": 0,
        "score": 0.5,
        "severity": "info",
        "threshold": 0.1,
        "max_error": 0.2,
        "direction": "high",
        "model_version": "1",
        "detected_at_ms": 0,
        "status": "open",
    }
    fields.update(changes)
    if fields["status"] == "closed":
        fields.setdefault("close_reason", "ended")
    return AnomalyEvent(**fields)
