"""Work orders in Redis: one JSON document per order plus the indexes that answer every query.

Keys:
- ``tmstream:workorder:<id>`` — the order (JSON of :class:`WorkOrder`);
- ``tmstream:workorders:state:<state>`` — set of ids in that state;
- ``tmstream:workorders:due`` — sorted set of unresolved ids scored by due time (ms);
- ``tmstream:workorders:active:<channel>`` — id of the channel's unresolved order;
- ``tmstream:workorders:event:<event_id>`` — id of the order an anomaly belongs to;
- ``tmstream:workorders:applied`` — set of anomaly emission keys already applied (redelivery guard);
- ``tmstream:workorders:hist:<ack|resolve>`` — hash of histogram buckets per priority (MTTA/MTTR).

Every change is one optimistic transaction (WATCH on the keys it read, then MULTI/EXEC), so the
service applying events and an operator acknowledging from the CLI never overwrite each other,
and an event applied twice (after a crash before the Kafka commit) changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import redis
from redis.client import Pipeline

from stream_workers.events import AnomalyEvent
from workorders import model
from workorders.errors import WorkOrderNotFound
from workorders.model import PRIORITIES, STATES, Priority, State, WorkOrder

T = TypeVar("T")
PREFIX = "tmstream:workorders"
APPLIED_KEY = f"{PREFIX}:applied"
DUE_KEY = f"{PREFIX}:due"
# Upper bounds (seconds) of the MTTA/MTTR histograms: minutes to a week.
DURATION_BUCKETS = (60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0, 259200.0, 604800.0)


def order_key(order_id: str) -> str:
    return f"tmstream:workorder:{order_id}"


def state_key(state: State) -> str:
    return f"{PREFIX}:state:{state}"


def active_key(channel: str) -> str:
    return f"{PREFIX}:active:{channel}"


def event_key(event_id: str) -> str:
    return f"{PREFIX}:event:{event_id}"


def histogram_key(kind: str) -> str:
    return f"{PREFIX}:hist:{kind}"


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Applied:
    """What one anomaly event did: ``opened``, ``updated`` or ``duplicate`` (already applied)."""

    outcome: str
    order: WorkOrder | None


@dataclass(frozen=True)
class DurationHistogram:
    """Cumulative bucket counts, sum and count of one priority (Prometheus histogram layout)."""

    buckets: list[tuple[float, int]]
    total: float
    count: int


class WorkOrderStore:
    def __init__(self, client: redis.Redis, due_hours: dict[Priority, float]) -> None:
        self.client = client
        self.due_hours = due_hours

    # -- reads ---------------------------------------------------------------------------------

    def get(self, order_id: str) -> WorkOrder:
        raw = self.client.get(order_key(order_id))
        if raw is None:
            raise WorkOrderNotFound(order_id)
        return WorkOrder.model_validate_json(raw)

    def orders(self, state: State | None = None, priority: Priority | None = None) -> list[WorkOrder]:
        """Orders sorted by due time (soonest first), optionally of one state and priority."""
        states = [state] if state else list(STATES)
        ids: set[bytes] = set()
        for name in states:
            ids |= self.client.smembers(state_key(name))  # type: ignore[arg-type]
        orders = self._load(sorted(i.decode() for i in ids))
        if priority:
            orders = [order for order in orders if order.priority == priority]
        return sorted(orders, key=lambda order: (order.due_ms, order.id))

    def _load(self, ids: Iterable[str]) -> list[WorkOrder]:
        keys = [order_key(order_id) for order_id in ids]
        if not keys:
            return []
        raws: list[bytes | None] = self.client.mget(keys)  # type: ignore[assignment]
        return [WorkOrder.model_validate_json(raw) for raw in raws if raw is not None]

    def counts(self) -> dict[tuple[State, Priority], int]:
        """Orders by state and priority, every combination present (zeros included)."""
        counts = {(state, priority): 0 for state in STATES for priority in PRIORITIES}
        for order in self.orders():
            counts[(order.state, order.priority)] += 1
        return counts

    def unresolved(self) -> list[WorkOrder]:
        ids = [i.decode() for i in self.client.zrange(DUE_KEY, 0, -1)]  # type: ignore[union-attr]
        return self._load(ids)

    def histogram(self, kind: str) -> dict[Priority, DurationHistogram]:
        fields: dict[bytes, bytes] = self.client.hgetall(histogram_key(kind))  # type: ignore[assignment]
        values = {key.decode(): float(value) for key, value in fields.items()}
        return {
            priority: DurationHistogram(
                buckets=[(le, int(values.get(f"{priority}|{le:g}", 0))) for le in DURATION_BUCKETS],
                total=values.get(f"{priority}|sum", 0.0),
                count=int(values.get(f"{priority}|count", 0)),
            )
            for priority in PRIORITIES
        }

    # -- writes --------------------------------------------------------------------------------

    def apply(self, event: AnomalyEvent) -> Applied:
        """Open or update the order of ``event``'s incident; a second application changes nothing."""

        def change(pipe: Pipeline) -> Applied:
            if pipe.sismember(APPLIED_KEY, event.emission_key):
                return Applied("duplicate", None)
            found = pipe.get(event_key(event.event_id)) or pipe.get(active_key(event.channel))
            current = None
            if found is not None:
                order_id = found.decode() if isinstance(found, bytes) else str(found)
                pipe.watch(order_key(order_id))
                raw = pipe.get(order_key(order_id))
                current = WorkOrder.model_validate_json(raw) if raw is not None else None
            if current is None:
                order, outcome = model.open_order(event, self.due_hours), "opened"
            else:
                order, outcome = model.merge_event(current, event, self.due_hours), "updated"
            pipe.multi()
            self._write(pipe, order, current.state if current else None)
            pipe.set(event_key(event.event_id), order.id)
            pipe.sadd(APPLIED_KEY, event.emission_key)
            return Applied(outcome, order)

        return self._transact(change, APPLIED_KEY, event_key(event.event_id), active_key(event.channel))

    def acknowledge(self, order_id: str, who: str | None = None, at_ms: int | None = None) -> WorkOrder:
        return self._transition(order_id, lambda order, now: model.acknowledge(order, now, who), at_ms)

    def assign(self, order_id: str, assignee: str, at_ms: int | None = None) -> WorkOrder:
        return self._transition(order_id, lambda order, now: model.assign(order, assignee, now), at_ms)

    def resolve(
        self, order_id: str, note: str, who: str | None = None, at_ms: int | None = None
    ) -> WorkOrder:
        return self._transition(order_id, lambda order, now: model.resolve(order, note, now, who), at_ms)

    def _transition(
        self, order_id: str, step: Callable[[WorkOrder, int], WorkOrder], at_ms: int | None
    ) -> WorkOrder:
        """Read, apply ``step`` (which raises on an illegal move, before anything is written), write."""

        def change(pipe: Pipeline) -> WorkOrder:
            raw = pipe.get(order_key(order_id))
            if raw is None:
                raise WorkOrderNotFound(order_id)
            before = WorkOrder.model_validate_json(raw)
            after = step(before, at_ms if at_ms is not None else now_ms())
            pipe.multi()
            self._write(pipe, after, before.state)
            if before.acknowledged_ms is None and after.acknowledged_ms is not None:
                self._observe(pipe, "ack", after.priority, after.acknowledged_ms - after.opened_ms)
            if before.resolved_ms is None and after.resolved_ms is not None:
                self._observe(pipe, "resolve", after.priority, after.resolved_ms - after.opened_ms)
            return after

        return self._transact(change, order_key(order_id))

    def _transact(self, change: Callable[[Pipeline], T], *watched: str) -> T:
        """Run ``change`` under WATCH of ``watched``; redis-py re-runs it when a watched key moved."""
        function = cast(Callable[[Pipeline], Any], change)
        return cast(T, self.client.transaction(function, *watched, value_from_callable=True))

    @staticmethod
    def _write(pipe: Pipeline, order: WorkOrder, previous_state: State | None) -> None:
        """The order and every index that depends on its state, queued in the open MULTI."""
        pipe.set(order_key(order.id), order.model_dump_json())
        if previous_state is not None and previous_state != order.state:
            pipe.srem(state_key(previous_state), order.id)
        pipe.sadd(state_key(order.state), order.id)
        if order.state == "resolved":
            pipe.zrem(DUE_KEY, order.id)
            if previous_state != "resolved":  # the channel's active order until now; a later one keeps its
                pipe.delete(active_key(order.channel))
        else:
            pipe.zadd(DUE_KEY, {order.id: order.due_ms})
            pipe.set(active_key(order.channel), order.id)

    @staticmethod
    def _observe(pipe: Pipeline, kind: str, priority: Priority, duration_ms: int) -> None:
        seconds = max(0.0, duration_ms / 1000)
        key = histogram_key(kind)
        for le in DURATION_BUCKETS:
            if seconds <= le:
                pipe.hincrby(key, f"{priority}|{le:g}", 1)
        pipe.hincrbyfloat(key, f"{priority}|sum", seconds)
        pipe.hincrby(key, f"{priority}|count", 1)
