"""Redis: an event stream, the latest state of each event and channel, and live alerts.

Keys (documented in docs/STREAM_WORKERS.md):
- ``tmstream:anomalies`` — XADD stream of emissions, bounded by ``redis.stream_maxlen``;
- ``tmstream:anomaly:<event_id>`` — hash with the latest emission of that anomaly;
- ``tmstream:anomalies:emitted`` — set of emission keys already written (the idempotency guard);
- ``tmstream:channel:<channel>`` — hash of the channel's latest value, prediction, errors, alarm;
- pub/sub channel ``tmstream:alerts`` — every new emission, for live subscribers.

The guard and the writes run in one Lua script, so an emission is written entirely or not at all,
and a second attempt (after a restart or a retry) changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from typing import TypeVar

import redis.asyncio as aioredis

from stream_workers.events import AnomalyEvent
from stream_workers.metrics import WorkerMetrics
from tmstream.ground.redis import redis_credentials
from tmstream.ground.retries import REDIS_REFUSING, REDIS_UNAVAILABLE, UNTIL_REDIS_IS_BACK, async_retrying
from tmstream.ground.settings import Settings

log = logging.getLogger(__name__)
R = TypeVar("R")

STREAM_KEY = "tmstream:anomalies"
EMITTED_KEY = "tmstream:anomalies:emitted"
ALERTS_CHANNEL = "tmstream:alerts"
EMIT_SCRIPT = """
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*',
           'event_id', ARGV[3], 'status', ARGV[4], 'channel', ARGV[5], 'event', ARGV[6])
redis.call('HSET', KEYS[3], 'event', ARGV[6], 'status', ARGV[4], 'channel', ARGV[5])
redis.call('PUBLISH', ARGV[7], ARGV[6])
return 1
"""


def anomaly_key(event_id: str) -> str:
    return f"tmstream:anomaly:{event_id}"


def channel_key(channel: str) -> str:
    return f"tmstream:channel:{channel}"


class RedisSink:
    def __init__(
        self,
        settings: Settings,
        metrics: WorkerMetrics,
        retry_cap_s: float | None = UNTIL_REDIS_IS_BACK.cap_s,
    ) -> None:
        self.client = aioredis.Redis.from_url(settings.redis.effective_url, **redis_credentials(settings))
        self.maxlen = settings.redis.stream_maxlen
        self.metrics = metrics
        self.retry_cap_s = retry_cap_s
        self._emit = self.client.register_script(EMIT_SCRIPT)

    async def _retrying(self, what: str, call: Callable[[], Awaitable[R]]) -> R:
        """Retry a Redis call until it succeeds: an alarm is delayed while Redis is away or refuses
        writes, never lost."""

        def retry(exc: BaseException, delay: float) -> None:
            self.metrics.sink_retries.labels("redis").inc()
            log.warning(
                "redis unavailable (%s: %s); retrying %s in %.1fs", type(exc).__name__, exc, what, delay
            )

        async def attempt() -> R:  # tenacity awaits only what a coroutine function returns
            return await call()

        backoff = replace(UNTIL_REDIS_IS_BACK, cap_s=self.retry_cap_s)
        errors = REDIS_UNAVAILABLE + REDIS_REFUSING
        return await async_retrying(errors, backoff, on_retry=retry)(attempt)

    async def emit(self, event: AnomalyEvent) -> bool:
        """Write one emission; False when it was already written."""
        payload = event.to_bytes().decode()
        keys = [EMITTED_KEY, STREAM_KEY, anomaly_key(event.event_id)]
        args: list[str | int] = [
            event.emission_key,
            self.maxlen,
            event.event_id,
            event.status,
            event.channel,
            payload,
            ALERTS_CHANNEL,
        ]
        written = await self._retrying(event.emission_key, lambda: self._emit(keys=keys, args=args))
        if written:
            self.metrics.events_emitted.labels("redis", event.status).inc()
        return bool(written)

    async def update_channels(self, states: Iterable[tuple[str, Mapping[str, str | float | int]]]) -> None:
        """The latest value, prediction and errors of each channel scored in this batch."""
        states = list(states)
        if not states:
            return

        async def write() -> None:
            pipe = self.client.pipeline(transaction=False)
            for channel, fields in states:
                pipe.hset(channel_key(channel), mapping=dict(fields))  # type: ignore[arg-type]
            await pipe.execute()

        await self._retrying("channel states", write)

    async def close(self) -> None:
        await self.client.aclose()
