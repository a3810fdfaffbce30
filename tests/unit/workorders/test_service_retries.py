"""The work-order service retries applying an event while Redis is away, until it is stopped."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from redis.exceptions import TimeoutError as RedisTimeoutError

from stream_workers.events import AnomalyEvent
from tests.anomaly_events import anomaly_event
from workorders.service import WorkOrderService
from workorders.store import Applied

EVENT = anomaly_event()


class FlakyStore:
    """``apply`` raises ``error`` on its first ``failures`` calls (and on every call when failures < 0)."""

    def __init__(self, failures: int, error: BaseException, on_call: object = None) -> None:
        self.failures, self.error, self.calls = failures, error, 0
        self.on_call = on_call

    def apply(self, event: AnomalyEvent) -> Applied:
        self.calls += 1
        if callable(self.on_call):
            self.on_call()
        if self.failures < 0 or self.calls <= self.failures:
            raise self.error
        return Applied("duplicate", None)


def service(store: FlakyStore) -> WorkOrderService:
    """The service without its Redis client, consumer or metrics registration: ``apply`` only."""
    found = object.__new__(WorkOrderService)
    found.store = store  # type: ignore[assignment]
    found.stop = threading.Event()
    return found


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []
    monkeypatch.setattr(time, "sleep", waits.append)
    return waits


def test_an_event_is_applied_once_redis_is_back(slept: list[float], caplog: pytest.LogCaptureFixture) -> None:
    store = FlakyStore(7, ConnectionRefusedError("refused"))
    with caplog.at_level(logging.WARNING, "workorders.service"):
        service(store).apply(EVENT.to_bytes())
    assert store.calls == 8
    assert slept == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0])
    assert caplog.records[0].getMessage() == (
        f"redis unavailable (refused); retrying event {EVENT.emission_key} in 0.2s"
    )


def test_stopping_ends_the_retries_with_the_redis_error(slept: list[float]) -> None:
    found: WorkOrderService
    store = FlakyStore(
        -1, RedisTimeoutError("timed out"), on_call=lambda: store.calls == 3 and found.stop.set()
    )
    found = service(store)
    with pytest.raises(RedisTimeoutError):
        found.apply(EVENT.to_bytes())
    assert store.calls == 3 and slept == pytest.approx([0.2, 0.4])
