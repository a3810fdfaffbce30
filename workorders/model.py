"""The work order and its state machine, kept free of Redis so every rule is a plain function.

States move open → acknowledged → resolved. Resolving an open order also acknowledges it at the
same instant: someone who fixed the problem has evidently seen it, and MTTA stays defined.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from stream_workers.events import CRITICAL_SUBSYSTEMS, AnomalyEvent, Severity
from workorders.errors import IllegalTransition, WorkOrderError

State = Literal["open", "acknowledged", "resolved"]
STATES: tuple[State, ...] = ("open", "acknowledged", "resolved")
Priority = Literal["P1", "P2", "P3"]
PRIORITIES: tuple[Priority, ...] = ("P1", "P2", "P3")
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
HOUR_MS = 3_600_000


def priority_for(subsystem: str, severity: Severity) -> Priority:
    """Severity sets the base priority; a critical subsystem (power, thermal, ...) raises it one step."""
    base = {"critical": 2, "warning": 3, "info": 3}[severity]
    if subsystem in CRITICAL_SUBSYSTEMS and severity != "info":
        base -= 1
    return PRIORITIES[max(0, base - 1)]


class Note(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    at_ms: int
    author: str | None = None
    text: str


class WorkOrder(BaseModel):
    """One channel incident: every anomaly event of the channel until the order is resolved."""

    model_config = ConfigDict(extra="forbid")

    id: str
    spacecraft: str
    channel: str
    subsystem: str
    priority: Priority
    severity: Severity
    state: State = "open"
    opened_ms: int
    due_ms: int
    updated_ms: int
    acknowledged_ms: int | None = None
    resolved_ms: int | None = None
    assignee: str | None = None
    notes: list[Note] = Field(default_factory=list)
    event_ids: list[str]
    anomaly_status: str
    max_score: float
    first_index: int
    last_index: int

    def overdue(self, now_ms: int) -> bool:
        return self.state != "resolved" and self.due_ms < now_ms

    def to_json(self, now_ms: int) -> dict[str, object]:
        """The API and ``--json`` form: the stored fields plus ``overdue`` at ``now_ms``."""
        return {**self.model_dump(), "overdue": self.overdue(now_ms)}


def order_id_for(event: AnomalyEvent) -> str:
    """Deterministic from the incident's first event: a redelivered first event names the same order."""
    return f"wo-{event.event_id[:10]}"


def open_order(event: AnomalyEvent, due_hours: dict[Priority, float]) -> WorkOrder:
    priority = priority_for(event.subsystem, event.severity)
    return WorkOrder(
        id=order_id_for(event),
        spacecraft=event.spacecraft,
        channel=event.channel,
        subsystem=event.subsystem,
        priority=priority,
        severity=event.severity,
        opened_ms=event.detected_at_ms,
        due_ms=event.detected_at_ms + round(due_hours[priority] * HOUR_MS),
        updated_ms=event.detected_at_ms,
        event_ids=[event.event_id],
        anomaly_status=event.status,
        max_score=event.score,
        first_index=event.start_index,
        last_index=event.end_index,
    )


def merge_event(order: WorkOrder, event: AnomalyEvent, due_hours: dict[Priority, float]) -> WorkOrder:
    """A later event of the incident: priority and severity only rise, the due time only moves earlier."""
    severity = max(order.severity, event.severity, key=SEVERITY_RANK.__getitem__)
    priority = min(order.priority, priority_for(event.subsystem, event.severity))
    return order.model_copy(
        update={
            "severity": severity,
            "priority": priority,
            "due_ms": min(order.due_ms, order.opened_ms + round(due_hours[priority] * HOUR_MS)),
            "updated_ms": max(order.updated_ms, event.detected_at_ms),
            "event_ids": order.event_ids if event.event_id in order.event_ids
            else [*order.event_ids, event.event_id],
            "anomaly_status": event.status,
            "max_score": max(order.max_score, event.score),
            "last_index": max(order.last_index, event.end_index),
        }
    )  # fmt: skip


def acknowledge(order: WorkOrder, now_ms: int, who: str | None) -> WorkOrder:
    if order.state != "open":
        raise IllegalTransition(
            f"work order {order.id} is {order.state}; only an open order can be acknowledged"
        )
    return order.model_copy(
        update={
            "state": "acknowledged",
            "acknowledged_ms": now_ms,
            "updated_ms": now_ms,
            "assignee": order.assignee or who,
        }
    )


def assign(order: WorkOrder, assignee: str, now_ms: int) -> WorkOrder:
    if order.state == "resolved":
        raise IllegalTransition(f"work order {order.id} is resolved; it cannot be reassigned")
    if not assignee.strip():
        raise WorkOrderError("an assignee must be named")
    return order.model_copy(update={"assignee": assignee.strip(), "updated_ms": now_ms})


def resolve(order: WorkOrder, note: str, now_ms: int, who: str | None) -> WorkOrder:
    if order.state == "resolved":
        raise IllegalTransition(f"work order {order.id} is already resolved")
    if not note.strip():
        raise WorkOrderError("resolving needs a note saying what was done")
    return order.model_copy(
        update={
            "state": "resolved",
            "acknowledged_ms": order.acknowledged_ms if order.acknowledged_ms is not None else now_ms,
            "resolved_ms": now_ms,
            "updated_ms": now_ms,
            "notes": [*order.notes, Note(at_ms=now_ms, author=who, text=note.strip())],
        }
    )
