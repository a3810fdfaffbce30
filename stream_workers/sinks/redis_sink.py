"""Redis: an event stream, the latest state of each event and channel, and live alerts.

Keys (documented in docs/STREAM_WORKERS.md):
- ``tmstream:anomalies`` — XADD stream of emissions, bounded by ``redis.stream_maxlen``;
- ``tmstream:anomaly:<event_id>`` — hash with the latest emission of that anomaly;
- ``tmstream:anomalies:emitted`` — set of emission keys already written (the idempotency guard);
- ``tmstream:channel:<channel>`` — hash of the channel's latest value, prediction, errors, alarm;
- pub/sub channel ``tmstream:alerts`` — every new emission, for live subscribers.

The guard and the writes run in one Lua script, so an emission is written entirely or not at all,
and a second attempt (after a restart or a retry) changes nothing.

Redis is a view of the ``anomalies`` topic, not a step before it: ``emit`` queues the emission and
returns, and one task writes the queue in order, retrying while Redis is away or refuses. So a
Redis outage never holds an alert on the topic; the queue is bounded (``max_pending``, after
which ``emit`` waits), and what a killed worker still had queued is written by its successor's
``reconcile`` from the topic's read-back (and by ``tmstream anomalies reconcile``).
"""

from __future__ import annotations

import asyncio
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
        max_pending: int = 10_000,
        attempts: int | None = None,
    ) -> None:
        self.client = aioredis.Redis.from_url(settings.redis.effective_url, **redis_credentials(settings))
        self.maxlen = settings.redis.stream_maxlen
        self.metrics = metrics
        self.retry_cap_s = retry_cap_s
        self.attempts = attempts  # None: until Redis is back (the worker); a command gives up
        self._emit = self.client.register_script(EMIT_SCRIPT)
        self.pending: asyncio.Queue[AnomalyEvent] = asyncio.Queue(max_pending)
        self.states: dict[str, Mapping[str, str | float | int]] = {}  # latest per channel, not yet written
        self.work = asyncio.Event()
        self.writer: asyncio.Task[None] | None = None

    def _wake(self) -> None:
        if self.writer is None or self.writer.done():
            self.writer = asyncio.get_running_loop().create_task(self._write_queue(), name="redis-sink")
        self.work.set()

    async def _write_queue(self) -> None:
        """Write queued emissions in order, then the channels' latest states; forever."""
        while True:
            await self.work.wait()
            self.work.clear()
            while not self.pending.empty() or self.states:
                while not self.pending.empty():
                    event = self.pending.get_nowait()
                    try:
                        await self._write_emission(event)
                    except Exception:  # not a retried error: the next reconcile writes it
                        log.exception("redis: emission %s not written", event.emission_key)
                    finally:
                        self.pending.task_done()
                if self.states:
                    states, self.states = self.states, {}
                    try:
                        await self._write_states(states)
                    except Exception:  # the next batch's values replace them
                        log.exception("redis: channel states not written")

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

        backoff = replace(UNTIL_REDIS_IS_BACK, cap_s=self.retry_cap_s, attempts=self.attempts)
        errors = REDIS_UNAVAILABLE + REDIS_REFUSING
        return await async_retrying(errors, backoff, on_retry=retry)(attempt)

    async def emit(self, event: AnomalyEvent) -> bool:
        """Queue one emission for Redis (waits only while ``max_pending`` are queued)."""
        await self.pending.put(event)
        self._wake()
        return True

    def _script_input(self, event: AnomalyEvent) -> tuple[list[str], list[str | int]]:
        keys = [EMITTED_KEY, STREAM_KEY, anomaly_key(event.event_id)]
        args: list[str | int] = [
            event.emission_key,
            self.maxlen,
            event.event_id,
            event.status,
            event.channel,
            event.to_bytes().decode(),
            ALERTS_CHANNEL,
        ]
        return keys, args

    async def _write_emission(self, event: AnomalyEvent) -> bool:
        """Write one emission; False when it was already written."""
        keys, args = self._script_input(event)
        written = await self._retrying(event.emission_key, lambda: self._emit(keys=keys, args=args))
        if written:
            self.metrics.events_emitted.labels("redis", event.status).inc()
        return bool(written)

    async def reconcile(self, events: Iterable[AnomalyEvent], chunk: int = 500) -> int:
        """Write the emissions of ``events`` (read back from the topic) that Redis lacks, in
        pipelines of ``chunk``; how many were missing."""
        events = list(events)
        missing = 0
        for start in range(0, len(events), chunk):
            part = events[start : start + chunk]

            async def write(part: list[AnomalyEvent] = part) -> list[int]:
                pipe = self.client.pipeline(transaction=False)
                for event in part:
                    keys, args = self._script_input(event)
                    await self._emit(keys=keys, args=args, client=pipe)
                return list(await pipe.execute())

            for event, written in zip(part, await self._retrying("reconcile", write), strict=True):
                if written:
                    missing += 1
                    self.metrics.events_emitted.labels("redis", event.status).inc()
        return missing

    async def update_channels(self, states: Iterable[tuple[str, Mapping[str, str | float | int]]]) -> None:
        """The latest value, prediction and errors of each channel scored in this batch (queued:
        a later batch's values replace what was not written yet)."""
        self.states.update(states)
        if self.states:
            self._wake()

    async def _write_states(self, states: Mapping[str, Mapping[str, str | float | int]]) -> None:
        async def write() -> None:
            pipe = self.client.pipeline(transaction=False)
            for channel, fields in states.items():
                pipe.hset(channel_key(channel), mapping=dict(fields))  # type: ignore[arg-type]
            await pipe.execute()

        await self._retrying("channel states", write)

    async def flush(self) -> None:
        """Wait until every queued emission is written."""
        if self.writer is not None:
            await self.pending.join()

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.cancel()
        await self.client.aclose()
