"""The Redis sink retries a write while Redis is away or refuses it, counting and logging each
retry, and queues emissions so that Redis never holds the topic's alerts; no Redis."""

from __future__ import annotations

import asyncio
import logging

import pytest
from prometheus_client import CollectorRegistry
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoPermissionError, OutOfMemoryError, ReadOnlyError, ResponseError

from stream_workers.metrics import WorkerMetrics
from stream_workers.sinks.redis_sink import RedisSink
from tests.anomaly_events import anomaly_event
from tmstream.ground.settings import load_settings


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []

    async def no_wait(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", no_wait)
    return waits


def sink(retry_cap_s: float = 5.0) -> tuple[RedisSink, CollectorRegistry]:
    registry = CollectorRegistry()
    return RedisSink(
        load_settings({"environment": "testing"}), WorkerMetrics.on(registry), retry_cap_s
    ), registry


def test_a_write_is_retried_with_capped_backoff_until_redis_answers(
    slept: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    redis_sink, registry = sink(retry_cap_s=1.0)
    calls = {"n": 0}

    async def write() -> int:
        calls["n"] += 1
        if calls["n"] <= 5:
            raise RedisConnectionError("Connection refused")
        return 1

    with caplog.at_level(logging.WARNING, "stream_workers.sinks.redis_sink"):
        assert asyncio.run(redis_sink._retrying("e1:open:10", write)) == 1
    assert slept == pytest.approx([0.2, 0.4, 0.8, 1.0, 1.0])
    assert registry.get_sample_value("tmstream_sink_retries_total", {"sink": "redis"}) == 5
    assert caplog.records[0].getMessage() == (
        "redis unavailable (ConnectionError: Connection refused); retrying e1:open:10 in 0.2s"
    )


def test_a_refused_command_is_not_retried(slept: list[float]) -> None:
    redis_sink, registry = sink()

    async def write() -> int:
        raise ResponseError("NOSCRIPT")

    with pytest.raises(ResponseError):
        asyncio.run(redis_sink._retrying("channel states", write))
    assert slept == []
    assert registry.get_sample_value("tmstream_sink_retries_total", {"sink": "redis"}) is None


@pytest.mark.parametrize(
    "error",
    [ReadOnlyError("READONLY replica"), OutOfMemoryError("OOM maxmemory"), NoPermissionError("NOPERM")],
)
def test_a_server_that_refuses_writes_is_retried_like_one_that_is_away(
    slept: list[float], error: Exception
) -> None:
    """READONLY after a failover, OOM, an ACL without the command: each passes or is fixed; before,
    each ended the batch and lost its alarms."""
    redis_sink, registry = sink()
    calls = {"n": 0}

    async def write() -> int:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise error
        return 1

    assert asyncio.run(redis_sink._retrying("e1:open:10", write)) == 1
    assert registry.get_sample_value("tmstream_sink_retries_total", {"sink": "redis"}) == 2


def test_emissions_queue_without_waiting_for_redis() -> None:
    """Redis away (nothing listens at the port): ``emit`` returns at once, so the topic's alerts of
    later batches are not held; the writes wait in the queue, in order."""
    settings = load_settings({"environment": "testing", "redis": {"url": "redis://127.0.0.1:9/0"}})
    events = [anomaly_event(event_id=f"e{n}", start_index=n, end_index=n + 5) for n in range(5)]

    async def scenario() -> list[str]:
        redis_sink = RedisSink(settings, WorkerMetrics.on(CollectorRegistry()))
        try:
            for event in events:
                await asyncio.wait_for(redis_sink.emit(event), timeout=1.0)
            await asyncio.sleep(0.2)  # the writer takes the first and retries it
            queued = [e.emission_key for e in list(redis_sink.pending._queue)]  # type: ignore[attr-defined]
        finally:
            await redis_sink.close()
        return queued

    assert asyncio.run(scenario()) == [e.emission_key for e in events[1:]]
