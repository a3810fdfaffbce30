"""The Faust worker: wires Faust's agent, rebalance signals, timers and web pages to ``WorkerCore``.

Telemetry topics are found by the regex ``kafka.telemetry_topic_pattern`` and re-listed every
``worker.topic_refresh_s`` (faust-streaming's own ``pattern=`` subscription does not work with
aiokafka: its driver passes only topic names), so a new channel topic needs no restart. The
protocol itself (recovery, redelivery, hand-over, snapshots) lives in ``worker_core``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NoReturn, TypeVar

import faust
import numpy as np
import prometheus_client
from faust.types import TP

from model_store.cache import ModelCache
from model_store.engine import InferenceEngine
from model_store.exceptions import ModelStoreError
from model_store.registry_readers import reading_registry
from producers.registry import ChannelLookup
from stream_workers.configuration import threshold_parameters
from stream_workers.faust_config import faust_options
from stream_workers.kafka_ports import FaustRecordSender, KafkaTopicReader, TelemetryTopics
from stream_workers.lease import LeaseLost, LoopLease
from stream_workers.metrics import WorkerMetrics
from stream_workers.ports import Partition, RecordRef
from stream_workers.scoring import StreamScorer
from stream_workers.sinks.kafka_sink import AnomalyTopicSink
from stream_workers.sinks.redis_sink import RedisSink
from stream_workers.worker_core import CoreConfig, WorkerCore
from stream_workers.worker_pages import RegistryProbe, add_pages
from tmstream.ground.failpoints import FailPoints
from tmstream.ground.scrape_targets import register_scrape_target, unregister_scrape_target
from tmstream.ground.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
EXIT_BATCH_FAILED = 70  # EX_SOFTWARE


def _partition(tp: TP) -> Partition:
    return Partition(tp.topic, tp.partition)


def _stop_unacknowledged(records: list[RecordRef]) -> NoReturn:
    """A batch the core could not finish (a sink past its retries, a broker read past its
    deadline): exit at once, before Faust acknowledges it (it would commit the offsets in the
    ``finally`` of its take buffer, and the batch's alarms would be lost). The group hands the
    partitions to a live worker, or to this one when its supervisor restarts it, and the
    recovery protocol re-derives the batch; the sinks drop what was already emitted."""
    first = records[0] if records else None
    where = f" from {first.topic}[{first.partition}]@{first.offset}" if first else ""
    log.critical("batch of %d records%s failed; exiting (%d) without acknowledging it",
                 len(records), where, EXIT_BATCH_FAILED, exc_info=True)  # fmt: skip
    _exit()


def _stop_fenced(exc: LeaseLost) -> NoReturn:
    """Outside a batch (a revoke, the idle close): the process was frozen past its lease."""
    log.critical("%s; exiting (%d)", exc, EXIT_BATCH_FAILED)
    _exit()


def _exit() -> NoReturn:
    logging.shutdown()
    os._exit(EXIT_BATCH_FAILED)


class ScoringWorker:
    """One worker process: builds the core and its ports; ``run`` does all broker I/O."""

    def __init__(self, settings: Settings, name: str | None = None) -> None:
        self.settings = settings
        self.name = name or f"{socket.gethostname()}-{settings.worker.metrics_port}"
        # no ``_created`` sample beside every counter and histogram: about a third of a fleet's
        # /metrics page (a dozen series per channel), and nothing here reads them
        prometheus_client.disable_created_metrics()
        self.metrics = WorkerMetrics.on()
        self.channels = ChannelLookup(settings.data_dir)
        self.model_registry = reading_registry(settings)  # without the MLflow client where it can
        model = settings.model
        self.cache = ModelCache(
            self.model_registry,
            max_models=model.cache_max_models,
            max_bytes=model.cache_max_bytes,
            refresh_seconds=model.refresh_seconds,
        )
        self.engine = InferenceEngine()
        worker = settings.worker
        self.scorer = StreamScorer(
            threshold_parameters(settings), self.cache, self.engine, self.channels, self.metrics,
            policy=worker.inference_policy, verify_every=worker.verify_every,
            tolerance=worker.stateful_tolerance,
        )  # fmt: skip
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="tmstream-scoring")
        self.probe = RegistryProbe(self.model_registry)
        self.topics = TelemetryTopics(settings)

    def _offload(self, function: Callable[[], T]) -> asyncio.Future[T]:
        return asyncio.get_running_loop().run_in_executor(self.executor, function)

    def _warm_up(self) -> None:
        """Open the model registry and run the engine once while Faust starts and joins: done on
        first use, MLflow's start-up and the engine's kernel load would delay the first batch. Loads
        one champion outside the cache, so the cache still holds only models of channels scored here."""
        try:
            registered = set(self.model_registry.channels())
            specs = self.channels.specs
            channel = next((channel for channel in specs if channel in registered), None)
            if channel is None:
                return
            weights = self.model_registry.load(self.model_registry.resolve(channel, self.cache.alias))
            rows = np.zeros((weights.l_s + 1, weights.n_features), np.float32)
            self.engine.predict_series(weights, rows)
            self.engine.carry_many([(weights, rows, None)])
        except ModelStoreError as exc:  # the first batch meets it again and leaves its channel unscored
            log.warning("warm-up: %s", exc)

    def build_app(self) -> faust.App:
        settings = self.settings
        datadir = settings.state_dir / "worker" / self.name
        datadir.mkdir(parents=True, exist_ok=True)
        app = faust.App(settings.worker.group, **faust_options(settings, datadir))
        telemetry = app.topic(
            *self.topics.prepare(self.channels.registry), key_serializer="raw", value_serializer="raw"
        )
        # Topics are added by discovery, as Faust's pattern= subscription does not work
        # (faust-streaming/faust#62); new ones then join within seconds, not 45 s.
        app.topics._resubscribe_sleep_lock_seconds = 1.0  # type: ignore[attr-defined]
        record_sender, reader = FaustRecordSender(app), KafkaTopicReader(settings)
        kafka = settings.kafka
        lease = LoopLease(float(app.conf.broker_session_timeout) / 2)
        core = WorkerCore(
            self.scorer,
            CoreConfig(
                kafka.state_topic,
                kafka.deadletter_topic,
                settings.worker.snapshot_every,
                settings.worker.idle_close_s,
            ),
            sender=record_sender,
            reader=reader,
            emission_log=AnomalyTopicSink(kafka.anomalies_topic, record_sender, reader, self.metrics),
            sinks=[redis := RedisSink(settings, self.metrics)],
            channel_states=redis,
            channel_spec=self.channels,
            metrics=self.metrics,
            offload=self._offload,
            fault_point=FailPoints.from_environment(),
            check_lease=lease.check,
        )

        @app.agent(telemetry)
        async def score(stream: Any) -> None:
            async for events in stream.take_events(
                settings.worker.max_batch, within=settings.worker.max_wait_ms / 1000
            ):
                records = [
                    RecordRef(m.topic, m.partition, m.offset, m.key, m.value)
                    for m in (event.message for event in events)
                ]
                try:
                    await core.process(records)
                except Exception:
                    _stop_unacknowledged(records)

        def highwater(partition: Partition) -> int | None:
            tp = TP(partition.topic, partition.partition)
            if tp not in app.consumer.assignment():  # aiokafka asserts on a partition it lacks
                return None
            try:
                return app.consumer.highwater(tp)
            except AssertionError:  # mid-rebalance aiokafka dropped it before Faust's view did:
                return None  # unknown for now (an exception here would crash the app's timer)

        async def on_assigned(worker_app: faust.App, assigned: set[TP], **_: Any) -> None:
            lease.renew()
            assignment = worker_app.consumer.assignment()
            await core.assigned(len(assignment), {_partition(tp) for tp in assignment})

        async def on_revoked(worker_app: faust.App, revoked: set[TP], **_: Any) -> None:
            try:
                await core.revoked(_partition(tp) for tp in revoked)
            except LeaseLost as exc:  # evicted while frozen: the hand-over snapshot is not ours to write
                _stop_fenced(exc)

        async def discover_topics() -> None:
            try:  # not on the scoring thread: a batch would wait behind the broker's topic list
                names = await asyncio.to_thread(self.topics.discover)
            except Exception as exc:  # broker briefly away: try again at the next tick
                log.warning("topic discovery failed: %s", exc)
                return
            new = [name for name in names if name not in telemetry.topics]
            if new:
                log.info("subscribing to %d new telemetry topic(s): %s", len(new), ", ".join(new[:5]))
                telemetry.topics = [*telemetry.topics, *new]
                app.topics._flag_changes()  # type: ignore[attr-defined]  # see faust-streaming/faust#62

        async def close_idle() -> None:
            try:
                await core.close_idle(highwater)
            except LeaseLost as exc:
                _stop_fenced(exc)

        async def tick_lease() -> None:
            lease.tick()

        async def export_lag() -> None:
            core.export_lag((_partition(tp) for tp in app.consumer.assignment()), highwater)

        app.on_partitions_assigned.connect(on_assigned)  # type: ignore[arg-type]
        app.on_partitions_revoked.connect(on_revoked)  # type: ignore[arg-type]
        app.timer(settings.worker.topic_refresh_s)(discover_topics)
        app.timer(1.0)(close_idle)
        app.timer(lease.limit_s / 10)(tick_lease)
        app.timer(5.0)(export_lag)
        add_pages(app, self.name, self.probe, self.cache, lambda: dict(self.scorer.modes))
        return app

    def run(self) -> None:
        """Run until SIGINT/SIGTERM; the metrics address is announced to the local Prometheus."""
        log.info("worker %s: initialising", self.name)
        app = self.build_app()

        @app.task
        async def warm_up() -> None:
            """Started with the app, not before it is built: the kernels' load holds the GIL for
            ≈0.5 s, spent better while the worker waits for the broker than beside the build."""
            threading.Thread(target=self._warm_up, name="tmstream-warm-up", daemon=True).start()

        address = f"{self.settings.worker.metrics_host}:{self.settings.worker.metrics_port}"
        target = register_scrape_target(self.settings, "worker", self.name, address)
        self.metrics.worker_up.set(1)
        self.cache.start()
        try:
            worker = faust.Worker(app, loglevel=self.settings.log_level, quiet=True)
            logging.getLogger("kafka").setLevel(logging.ERROR)
            worker.execute_from_commandline()
        finally:
            self.metrics.worker_up.set(0)
            unregister_scrape_target(target)
            self.cache.stop()
            self.executor.shutdown(wait=False)
            self.probe.close()
            self.engine.close()
            self.topics.close()
