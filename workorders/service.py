"""``tmstream workorders serve``: a consumer group on the anomalies topic plus the JSON API.

Why a service of its own rather than an agent inside the scoring worker: work orders are a
maintenance concern with their own consumer group (``workorders.group``), so they can be
restarted, scaled or replayed from the start of the topic without touching scoring, and a slow
Redis here never delays scoring.

Delivery: offsets are committed after the batch's events are in Redis (at-least-once); the store
ignores emissions it has already applied, so a redelivered batch changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import threading
from typing import Any

from aiohttp import web
from kafka import KafkaConsumer
from prometheus_client import REGISTRY
from pydantic import ValidationError

from stream_workers.events import AnomalyEvent
from tmstream.ground.redis import redis_client
from tmstream.ground.retries import REDIS_UNAVAILABLE, UNTIL_REDIS_IS_BACK, retrying
from tmstream.ground.scrape_targets import register_scrape_target, unregister_scrape_target
from tmstream.ground.settings import Settings
from tmstream.ground.topics import ensure_topics
from workorders.api import build_api
from workorders.metrics import EVENTS_APPLIED, WorkOrderCollector
from workorders.store import WorkOrderStore

log = logging.getLogger(__name__)


class WorkOrderService:
    def __init__(self, settings: Settings, name: str | None = None) -> None:
        self.settings = settings
        self.name = name or f"{socket.gethostname()}-{settings.workorders.api_port}"
        self.store = WorkOrderStore(redis_client(settings), settings.workorders.due_hours)
        self.stop = threading.Event()
        self.consumed = 0
        self.consumer_alive = False
        self.failure: str | None = None
        REGISTRY.register(WorkOrderCollector(self.store))

    def apply(self, payload: bytes) -> None:
        """Apply one record, retrying while Redis is away (its offset is not committed before)."""
        try:
            event = AnomalyEvent.from_bytes(payload)
        except ValidationError as exc:
            EVENTS_APPLIED.labels("invalid").inc()
            log.warning("skipping a record that is not a tmstream.anomaly.v1 event: %s", exc.errors()[0])
            return

        def retry(exc: BaseException, delay: float) -> None:
            log.warning("redis unavailable (%s); retrying event %s in %.1fs", exc, event.emission_key, delay)

        policy = retrying(REDIS_UNAVAILABLE, UNTIL_REDIS_IS_BACK, on_retry=retry, give_up=self.stop.is_set)
        applied = policy(self.store.apply, event)
        EVENTS_APPLIED.labels(applied.outcome).inc()
        if applied.order is not None:
            log.info("%s %s (%s %s) from %s", applied.outcome, applied.order.id, applied.order.priority,
                     applied.order.channel, event.emission_key)  # fmt: skip

    def consume(self) -> None:
        """The consumer loop (a thread): poll, apply, commit, until ``stop`` is set."""
        # A group that joins before its topic exists is assigned nothing, and kafka-python does
        # not always rejoin when the topic appears (seen on a fresh broker, the service started
        # before the first worker): create the topic first, as the workers do (idempotent).
        ensure_topics(self.settings, [self.settings.kafka.anomalies_topic])
        consumer = KafkaConsumer(
            self.settings.kafka.anomalies_topic,
            **self.settings.kafka.client_options(),
            group_id=self.settings.workorders.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # partitions added later reach the group at the next metadata refresh (5 min by
            # default): refresh often, the request is tiny.
            metadata_max_age_ms=5000,
        )
        self.consumer_alive = True
        try:
            while not self.stop.is_set():
                batches = consumer.poll(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        self.apply(record.value)
                        self.consumed += 1
                if batches:
                    consumer.commit()
        finally:
            self.consumer_alive = False
            consumer.close()

    def health(self) -> dict[str, Any]:
        return {"service": self.name, "consumer_alive": self.consumer_alive, "events_consumed": self.consumed}

    async def serve(self) -> None:
        """Serve the API until SIGINT/SIGTERM or the consumer dies; announce /metrics to Prometheus."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop.set)
        consumer = threading.Thread(target=self._consume_or_stop, name="tmstream-workorders", daemon=True)
        consumer.start()
        host, port = self.settings.workorders.api_host, self.settings.workorders.api_port
        runner = web.AppRunner(build_api(self.store, self.health))
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        target = register_scrape_target(self.settings, "workorders", self.name, f"{host}:{port}")
        log.info("work-order API on http://%s:%d", host, port)
        try:
            while not self.stop.is_set():
                await asyncio.sleep(0.2)
        finally:
            unregister_scrape_target(target)
            await runner.cleanup()
            await asyncio.to_thread(consumer.join, 10)

    def _consume_or_stop(self) -> None:
        try:
            self.consume()
        except Exception as exc:
            log.exception("work-order consumer failed; stopping the service")
            self.failure = f"{type(exc).__name__}: {exc}"
            self.stop.set()
