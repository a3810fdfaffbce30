"""The work-order store on the session's real Redis: incidents, redelivery, transitions, indexes,
concurrent operators and the scrape-time metrics."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
import redis
from prometheus_client import CollectorRegistry

from stream_workers.events import AnomalyEvent
from tmstream.ground.settings import Settings
from workorders.errors import IllegalTransition, WorkOrderNotFound
from workorders.metrics import WorkOrderCollector
from workorders.store import DUE_KEY, WorkOrderStore, active_key, order_key, state_key

POLICY = {"P1": 4.0, "P2": 24.0, "P3": 72.0}
T0 = 1_700_000_000_000


@pytest.fixture
def client(stack: Settings) -> Iterator[redis.Redis]:
    """A Redis database of its own (1-15, like the pipeline fixture), emptied before and after."""
    db = 1 + uuid.uuid4().int % 15
    connection = redis.Redis(host="127.0.0.1", port=stack.redis.port, db=db)
    connection.flushdb()
    yield connection
    connection.flushdb()
    connection.close()


@pytest.fixture
def store(client: redis.Redis) -> WorkOrderStore:
    return WorkOrderStore(client, POLICY)


def event(event_id: str, channel: str = "T-12", status: str = "open", **changes: object) -> AnomalyEvent:
    fields: dict[str, object] = {
        "event_id": event_id, "channel": channel, "spacecraft": "MSL", "subsystem": "thermal",
        "start_index": 100, "end_index": 150, "start_time_ms": 0, "end_time_ms": 0, "score": 0.6,
        "severity": "critical", "threshold": 0.1, "max_error": 0.5, "direction": "high",
        "model_version": "1", "detected_at_ms": T0, "status": status,
    }  # fmt: skip
    return AnomalyEvent.model_validate({**fields, **changes})


def test_one_order_per_incident_and_redelivery_changes_nothing(
    store: WorkOrderStore, client: redis.Redis
) -> None:
    opened = store.apply(event("e1"))
    assert opened.outcome == "opened" and opened.order is not None
    order_id = opened.order.id
    assert store.apply(event("e1", "updated", end_index=180)).outcome == "updated"
    assert store.apply(event("e1", "closed", end_index=200)).outcome == "updated"
    second = store.apply(event("e2", start_index=400, end_index=420, score=1.5))
    assert second.order is not None and second.order.id == order_id, "same channel, still unresolved"
    stored = client.get(order_key(order_id))

    for replayed in (
        event("e1"),
        event("e1", "closed", end_index=200),
        event("e2", start_index=400, end_index=420),
    ):
        assert store.apply(replayed).outcome == "duplicate"
    assert client.get(order_key(order_id)) == stored
    order = store.get(order_id)
    assert (order.event_ids, order.last_index, order.priority) == (["e1", "e2"], 420, "P1")
    assert [o.id for o in store.orders()] == [order_id]


def test_after_resolution_the_next_anomaly_opens_a_new_order(
    store: WorkOrderStore, client: redis.Redis
) -> None:
    first = store.apply(event("e1")).order
    assert first is not None
    store.resolve(first.id, "replaced heater", "ana", at_ms=T0 + 60_000)
    second = store.apply(event("e2", start_index=900, end_index=950)).order
    assert second is not None and second.id != first.id and second.state == "open"
    late = store.apply(event("e1", "closed", end_index=210))
    assert late.order is not None and late.order.id == first.id and late.order.state == "resolved"
    assert client.get(active_key("T-12")) == second.id.encode(), (
        "a late event of a resolved order keeps the new one"
    )


def test_transitions_and_their_indexes(store: WorkOrderStore, client: redis.Redis) -> None:
    order = store.apply(event("e1")).order
    assert order is not None
    assert client.smembers(state_key("open")) == {order.id.encode()}
    assert client.zscore(DUE_KEY, order.id) == T0 + 4 * 3_600_000

    acked = store.acknowledge(order.id, "ana", at_ms=T0 + 120_000)
    assert (acked.state, acked.assignee) == ("acknowledged", "ana")
    assert client.smembers(state_key("open")) == set()
    assert client.smembers(state_key("acknowledged")) == {order.id.encode()}
    assert store.assign(order.id, "bo").assignee == "bo"
    assert [o.id for o in store.orders(state="acknowledged", priority="P1")] == [order.id]
    assert store.orders(state="open") == [] and store.orders(priority="P3") == []

    resolved = store.resolve(order.id, "heater reset", "bo", at_ms=T0 + 600_000)
    assert resolved.state == "resolved" and resolved.notes[0].text == "heater reset"
    assert client.smembers(state_key("resolved")) == {order.id.encode()}
    assert client.zscore(DUE_KEY, order.id) is None and client.get(active_key("T-12")) is None


def test_illegal_transitions_and_unknown_ids_change_nothing(
    store: WorkOrderStore, client: redis.Redis
) -> None:
    order = store.apply(event("e1")).order
    assert order is not None
    store.resolve(order.id, "fixed")
    before = {key: client.dump(key) for key in client.keys("*")}
    with pytest.raises(IllegalTransition, match="resolved"):
        store.acknowledge(order.id)
    with pytest.raises(IllegalTransition):
        store.resolve(order.id, "again")
    with pytest.raises(WorkOrderNotFound, match="wo-nope"):
        store.acknowledge("wo-nope")
    assert {key: client.dump(key) for key in client.keys("*")} == before


def test_two_operators_acknowledging_at_once_one_wins(store: WorkOrderStore, client: redis.Redis) -> None:
    order = store.apply(event("e1")).order
    assert order is not None
    results: list[str] = []
    barrier = threading.Barrier(8)

    def operator(name: str) -> None:
        other = WorkOrderStore(redis.Redis(connection_pool=client.connection_pool), POLICY)
        barrier.wait()
        try:
            other.acknowledge(order.id, name)
            results.append("ok")
        except IllegalTransition:
            results.append("refused")

    threads = [threading.Thread(target=operator, args=(f"op{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["ok"] + ["refused"] * 7
    assert store.histogram("ack")["P1"].count == 1


def test_metrics_from_the_store(store: WorkOrderStore) -> None:
    p1 = store.apply(event("e1")).order
    p3 = store.apply(event("e9", channel="D-14", subsystem="data_handling", severity="warning")).order
    assert p1 is not None and p3 is not None
    store.acknowledge(p1.id, at_ms=T0 + 90_000)
    store.resolve(p1.id, "done", at_ms=T0 + 2 * 3_600_000)
    registry = CollectorRegistry()
    registry.register(WorkOrderCollector(store, clock=lambda: T0 + 100 * 3_600_000))
    value = registry.get_sample_value

    assert value("tmstream_workorders", {"state": "resolved", "priority": "P1"}) == 1
    assert value("tmstream_workorders", {"state": "open", "priority": "P3"}) == 1
    assert value("tmstream_workorders", {"state": "open", "priority": "P1"}) == 0
    assert value("tmstream_workorders_overdue", {"priority": "P3"}) == 1, "72 h passed at T0 + 100 h"
    assert value("tmstream_workorder_ack_seconds_bucket", {"priority": "P1", "le": "60"}) == 0
    assert value("tmstream_workorder_ack_seconds_bucket", {"priority": "P1", "le": "300"}) == 1
    assert value("tmstream_workorder_ack_seconds_sum", {"priority": "P1"}) == 90
    assert value("tmstream_workorder_resolve_seconds_count", {"priority": "P1"}) == 1
    assert value("tmstream_workorder_resolve_seconds_bucket", {"priority": "P1", "le": "3600"}) == 0
    assert value("tmstream_workorder_resolve_seconds_bucket", {"priority": "P1", "le": "7200"}) == 1
    due = {"id": p3.id, "spacecraft": "MSL", "channel": "D-14", "priority": "P3", "state": "open"}
    assert value("tmstream_workorder_due_timestamp_seconds", due) == p3.due_ms / 1000
    assert value("tmstream_workorders_store_up") == 1
