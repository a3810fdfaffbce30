"""The Redis sink retries a write while Redis is away, counting and logging each retry; no Redis."""

from __future__ import annotations

import asyncio
import logging

import pytest
from prometheus_client import CollectorRegistry
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from stream_workers.metrics import WorkerMetrics
from stream_workers.sinks.redis_sink import RedisSink
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
