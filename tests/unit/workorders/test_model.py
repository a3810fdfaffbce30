"""The work-order rules as plain functions: priority policy, due times, incident merging, transitions."""

from __future__ import annotations

import pytest

from stream_workers.events import AnomalyEvent
from workorders import model
from workorders.errors import IllegalTransition, WorkOrderError

POLICY = {"P1": 4.0, "P2": 24.0, "P3": 72.0}
HOUR = 3_600_000


def event(
    channel: str = "D-14", severity: str = "warning", status: str = "open", **changes: object
) -> AnomalyEvent:
    fields: dict[str, object] = {
        "event_id": f"{channel}-e1",
        "channel": channel,
        "spacecraft": "MSL",
        "subsystem": {"D": "data_handling", "P": "power", "T": "thermal"}[channel[0]],
        "start_index": 1800,
        "end_index": 1900,
        "start_time_ms": 0,
        "end_time_ms": 0,
        "score": 0.4,
        "severity": severity,
        "threshold": 0.1,
        "max_error": 0.5,
        "direction": "high",
        "model_version": "1",
        "detected_at_ms": 1_000_000,
        "status": status,
    }
    return AnomalyEvent.model_validate({**fields, **changes})


@pytest.mark.parametrize(
    ("subsystem", "severity", "priority"),
    [
        ("power", "critical", "P1"),
        ("thermal", "warning", "P2"),
        ("power", "info", "P3"),
        ("data_handling", "critical", "P2"),
        ("data_handling", "warning", "P3"),
        ("communication", "info", "P3"),
    ],
)
def test_priority_from_subsystem_and_severity(subsystem: str, severity: str, priority: str) -> None:
    assert model.priority_for(subsystem, severity) == priority  # type: ignore[arg-type]


def test_a_new_order_is_due_after_its_priority_hours() -> None:
    order = model.open_order(event("P-1", "critical"), POLICY)
    assert (order.priority, order.state, order.due_ms) == ("P1", "open", 1_000_000 + 4 * HOUR)
    assert order.id == "wo-P-1-e1" and order.event_ids == ["P-1-e1"]


def test_a_later_event_raises_priority_and_brings_the_due_time_forward_never_back() -> None:
    order = model.open_order(event(severity="warning"), POLICY)
    assert (order.priority, order.due_ms) == ("P3", 1_000_000 + 72 * HOUR)
    worse = model.merge_event(order, event(severity="critical", status="updated", end_index=2000), POLICY)
    assert (worse.priority, worse.severity, worse.due_ms, worse.last_index) == (
        "P2", "critical", 1_000_000 + 24 * HOUR, 2000,
    )  # fmt: skip
    milder = model.merge_event(
        worse, event(severity="info", status="closed", event_id="e2", score=0.1), POLICY
    )
    assert (milder.priority, milder.severity, milder.due_ms) == ("P2", "critical", worse.due_ms)
    assert milder.event_ids == ["D-14-e1", "e2"] and milder.anomaly_status == "closed"


def test_open_to_acknowledged_to_resolved() -> None:
    order = model.open_order(event(), POLICY)
    acked = model.acknowledge(order, 2_000_000, "ana")
    assert (acked.state, acked.acknowledged_ms, acked.assignee) == ("acknowledged", 2_000_000, "ana")
    done = model.resolve(model.assign(acked, "bo", 2_500_000), "replaced the sensor", 3_000_000, "bo")
    assert (done.state, done.resolved_ms, done.assignee) == ("resolved", 3_000_000, "bo")
    assert [(note.author, note.text) for note in done.notes] == [("bo", "replaced the sensor")]


def test_resolving_an_open_order_acknowledges_it_at_the_same_time() -> None:
    done = model.resolve(model.open_order(event(), POLICY), "false alarm", 5_000_000, None)
    assert done.acknowledged_ms == done.resolved_ms == 5_000_000


def test_illegal_moves_raise_and_bad_input_is_refused() -> None:
    order = model.open_order(event(), POLICY)
    done = model.resolve(order, "fixed", 2_000_000, None)
    with pytest.raises(IllegalTransition, match="resolved"):
        model.acknowledge(done, 3_000_000, None)
    with pytest.raises(IllegalTransition, match="already resolved"):
        model.resolve(done, "again", 3_000_000, None)
    with pytest.raises(IllegalTransition, match="reassigned"):
        model.assign(done, "ana", 3_000_000)
    with pytest.raises(IllegalTransition, match="only an open order"):
        model.acknowledge(model.acknowledge(order, 2_000_000, None), 3_000_000, None)
    with pytest.raises(WorkOrderError, match="note"):
        model.resolve(order, "  ", 2_000_000, None)
    with pytest.raises(WorkOrderError, match="assignee"):
        model.assign(order, "", 2_000_000)


def test_overdue_only_while_unresolved() -> None:
    order = model.open_order(event("P-1", "critical"), POLICY)
    assert not order.overdue(order.due_ms) and order.overdue(order.due_ms + 1)
    assert not model.resolve(order, "fixed", order.due_ms + 5, None).overdue(order.due_ms + 10)
