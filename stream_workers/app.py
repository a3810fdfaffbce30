"""The Faust worker: a thin adapter between Kafka and the ``StreamScorer``.

Telemetry topics are found by the regex ``kafka.telemetry_topic_pattern`` and re-listed every
``worker.topic_refresh_s`` (faust-streaming's own ``pattern=`` subscription does not work with
aiokafka: its driver passes only topic names), so a new channel topic needs no restart.

Exactly-once per sink on top of at-least-once consumption:
- each channel's stream state is snapshotted to a compacted topic every ``snapshot_every`` points
  and when its partition is revoked; a worker that takes a channel over restores the snapshot and
  re-reads the records between the snapshot and the first record Faust delivers;
- records at or before a channel's last processed offset are redeliveries and are skipped;
- anomaly emissions re-derived after a restart are dropped by idempotent sinks (see ``sinks``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import ssl
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import faust
import numpy as np
from faust.tables import TableManager
from faust.transport.utils import DefaultSchedulingStrategy
from faust.types import TP
from kafka import TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.errors import TopicAlreadyExistsError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from model_store.cache import ModelCache
from model_store.engine import InferenceEngine
from model_store.exceptions import ModelStoreError
from model_store.registry import ModelRegistry
from producers.channel_spec import ChannelSpec
from producers.registry import ChannelRegistry, required_topics
from stream_workers.channel_stream import ChannelStream
from stream_workers.configuration import threshold_parameters
from stream_workers.events import AnomalyEvent
from stream_workers.metrics import WorkerMetrics
from stream_workers.scoring import DeadLetter, RecordRef, StreamScorer
from stream_workers.sinks.kafka_sink import AnomalyTopicSink
from stream_workers.sinks.redis_sink import RedisSink
from tmstream.ground.scrape_targets import register_scrape_target, unregister_scrape_target
from tmstream.ground.settings import Settings
from tmstream.ground.topic_reader import read_range, read_topic
from tmstream.ground.topics import admin_client, connect_admin, ensure_topics

log = logging.getLogger(__name__)


def _broker_url(settings: Settings) -> list[str]:
    return [f"kafka://{server}" for server in settings.kafka.bootstrap_servers.split(",")]


def _as_page(view: Any) -> Any:
    """Faust binds page functions to its View class; a bound method would lose the view."""

    async def page(web: Any, request: Any) -> Any:
        return await view(web, request)

    return page


def _credentials(settings: Settings) -> Any:
    """Faust's spelling of ``KafkaSettings.client_options``: SASL, TLS (``kafka.ssl_cafile``) or both.

    Without the SSL context Faust would connect in plaintext to a TLS listener.
    """
    kafka = settings.kafka
    context = None
    if kafka.security_protocol.endswith("SSL"):
        cafile = str(kafka.ssl_cafile) if kafka.ssl_cafile else None
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    if not kafka.security_protocol.startswith("SASL"):
        return None if context is None else faust.SSLCredentials(context)
    password = kafka.password.get_secret_value() if kafka.password else ""
    return faust.SASLCredentials(
        username=kafka.username or "",
        password=password,
        mechanism=kafka.sasl_mechanism or "SCRAM-SHA-512",
        ssl_context=context,
    )


class PartitionRunScheduler(DefaultSchedulingStrategy):
    """Delivers each partition's fetched records as one run, partition after partition.

    Faust's default takes one record of each topic in turn. With a topic per channel, a worker
    starting on a backlog then fills every channel's first window (``l_s`` rows) at the same time,
    after about ``l_s`` records per channel, so nothing is scored for seconds. In runs, the first
    channel is scored after its own ``l_s`` rows, and each batch holds longer runs per channel.
    Records of one partition keep their order; each fetch still serves every partition.
    """

    def iterate(self, records: Mapping[TP, list[Any]]) -> Iterator[tuple[TP, Any]]:
        for tp, messages in records.items():
            for message in messages:
                yield tp, message


class NoTablesManager(TableManager):
    """Faust's table manager without its start-up second: it sleeps 1 s for tables declared late
    before the consumer may subscribe. The worker declares none, so the sleep only delays the join."""

    async def on_start(self) -> None:
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()


class ScoringWorker:
    """Owns the scorer, the sinks and the snapshots of one worker process."""

    def __init__(self, settings: Settings, name: str | None = None) -> None:
        self.settings = settings
        self.name = name or f"{socket.gethostname()}-{settings.worker.metrics_port}"
        log.info("worker %s: initialising", self.name)
        self.params = threshold_parameters(settings)
        self.metrics = WorkerMetrics.on()
        self.channels = ChannelRegistry.load(settings.data_dir)
        self.specs = {spec.channel: spec for spec in self.channels.channels()}
        self.model_registry = ModelRegistry(settings)
        self.cache = ModelCache(
            self.model_registry,
            max_models=settings.model.cache_max_models,
            max_bytes=settings.model.cache_max_bytes,
            refresh_seconds=settings.model.refresh_seconds,
        )
        self.engine = InferenceEngine()
        self.warm_up = threading.Thread(target=self._warm_up, name="tmstream-warm-up", daemon=True)
        self.warm_up.start()
        self.scorer = StreamScorer(self.params, self.cache, self.engine, self._spec, self.metrics)
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="tmstream-scoring")
        self.redis = RedisSink(settings, self.metrics)
        self.anomaly_sink = AnomalyTopicSink(settings, self.metrics)
        self.lock = asyncio.Lock()
        self.reloaded = asyncio.Event()  # set once on_assigned has read the snapshots and emissions
        self.snapshots: dict[str, bytes] = {}
        self.seen: set[str] = set()
        self.channel_tp: dict[str, TP] = {}
        self.snapshot_index: dict[str, int] = {}
        self.positions: dict[TP, int] = {}
        self.first_offsets: dict[TP, int] = {}  # first record of each partition in this process
        self.registry_mtime = self.channels.path.stat().st_mtime if self.channels.path.exists() else 0.0
        self.admin: KafkaAdminClient | None = None  # topic discovery's, opened on its first tick
        self.app = self._build_app()

    def _spec(self, channel: str) -> ChannelSpec | None:
        """The registry entry of ``channel``; the registry file is re-read when it changed."""
        spec = self.specs.get(channel)
        if spec is None:
            mtime = self.channels.path.stat().st_mtime if self.channels.path.exists() else 0.0
            if mtime != self.registry_mtime:
                self.registry_mtime = mtime
                self.channels = ChannelRegistry.load(self.settings.data_dir)
                self.specs = {spec.channel: spec for spec in self.channels.channels()}
                spec = self.specs.get(channel)
        return spec

    def _warm_up(self) -> None:
        """Open the model registry and run the engine once while Faust starts and joins.

        Opening MLflow (imports, the SQLite store) takes seconds and the engine's first call loads
        its compiled kernels; done on first use, both would delay the first scored batch. Loads
        one champion outside the cache, so the cache still holds only models of channels scored here.
        """
        try:
            registered = set(self.model_registry.channels())
            channel = next((channel for channel in self.specs if channel in registered), None)
            if channel is None:
                return
            weights = self.model_registry.load(self.model_registry.resolve(channel, self.cache.alias))
            self.engine.predict_series(weights, np.zeros((weights.l_s + 1, weights.n_features), np.float32))
        except ModelStoreError as exc:  # the first batch meets it again and leaves its channel unscored
            log.warning("warm-up: %s", exc)

    def _matching(self, names: list[str]) -> list[str]:
        pattern = re.compile(self.settings.kafka.telemetry_topic_pattern)
        return sorted(name for name in names if pattern.fullmatch(name))

    def matching_topics(self) -> list[str]:
        """The telemetry topics on the broker, through one admin client kept for the discovery
        timer (a client per tick cost a connection, its metadata and an I/O thread every second)."""
        if self.admin is None:
            self.admin = connect_admin(self.settings)
        try:
            return self._matching(self.admin.list_topics())
        except Exception:
            self.admin.close()
            self.admin = None
            raise

    def prepare_topics(self) -> list[str]:
        """Create the registry's topics, the sinks' topics and the compacted state topic."""
        ensure_topics(self.settings, required_topics(self.settings, self.channels))
        state = self.settings.kafka.state_topic
        with admin_client(self.settings) as admin:
            names = admin.list_topics()
            if state not in names:
                from kafka.admin import NewTopic

                topic = NewTopic(
                    state,
                    num_partitions=1,
                    replication_factor=self.settings.kafka.replication_factor,
                    topic_configs={"cleanup.policy": "compact", "segment.ms": "600000"},
                )
                with contextlib.suppress(TopicAlreadyExistsError):  # a worker starting beside us won
                    admin.create_topics([topic])
        return self._matching(names)

    def _build_app(self) -> faust.App:
        settings = self.settings
        (settings.state_dir / "worker" / self.name).mkdir(parents=True, exist_ok=True)
        app = faust.App(
            settings.worker.group,
            broker=_broker_url(settings),
            broker_credentials=_credentials(settings),
            store="memory://",
            datadir=str(settings.state_dir / "worker" / self.name),
            web_host=settings.worker.metrics_host,
            web_bind=settings.worker.metrics_host,  # web_host only names it: Faust binds 0.0.0.0 by default
            web_port=settings.worker.metrics_port,
            web_enabled=True,
            consumer_auto_offset_reset="earliest",
            producer_acks=-1,
            topic_allow_declare=False,
            topic_disable_leader=True,
            broker_commit_every=500,
            broker_commit_interval=1.0,
            stream_wait_empty=False,
            logging_config=None,
            ConsumerScheduler=PartitionRunScheduler,
            TableManager=NoTablesManager,
        )
        telemetry = app.topic(*self.prepare_topics(), key_serializer="raw", value_serializer="raw")
        self.telemetry = telemetry
        self.anomalies = app.topic(
            settings.kafka.anomalies_topic, key_serializer="raw", value_serializer="raw"
        )
        self.deadletters = app.topic(
            settings.kafka.deadletter_topic, key_serializer="raw", value_serializer="raw"
        )
        self.state_topic = app.topic(settings.kafka.state_topic, key_serializer="raw", value_serializer="raw")
        app.topics._resubscribe_sleep_lock_seconds = 1.0  # type: ignore[attr-defined]  # new topics join within seconds, not 45 s

        @app.agent(telemetry)
        async def score(stream: Any) -> None:
            async for events in stream.take_events(
                settings.worker.max_batch, within=settings.worker.max_wait_ms / 1000
            ):
                await self.process(events)

        app.timer(settings.worker.topic_refresh_s)(self.discover_topics)
        app.timer(1.0)(self.close_idle)
        app.timer(5.0)(self.export_lag)
        app.on_partitions_assigned.connect(self.on_assigned)  # type: ignore[arg-type]
        app.on_partitions_revoked.connect(self.on_revoked)  # type: ignore[arg-type]
        views = {
            "/metrics": self.metrics_view,
            "/health": self.health_view,
            "/ready": self.ready_view,
            "/models": self.models_view,
        }
        for path, view in views.items():
            app.page(path)(_as_page(view))
        return app

    async def _blocking(self, function: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)

    async def process(self, events: list[Any]) -> None:
        # Faust resumes new partitions before its on_partitions_assigned signal handlers finish:
        # without this wait a channel would be restored without its snapshot, and emissions
        # re-derived before the anomalies topic was read back would be sent twice.
        await self.reloaded.wait()
        async with self.lock:
            letters: list[DeadLetter] = []
            for event in events:
                message = event.message
                record = RecordRef(
                    message.topic, message.partition, message.offset, message.key, message.value
                )
                self.first_offsets.setdefault(TP(message.topic, message.partition), message.offset)
                letters += await self._first_sight(record)
                letter = self.scorer.accept(record)
                if letter is not None:
                    letters.append(letter)
                self.positions[TP(message.topic, message.partition)] = message.offset
            await self._dead_letters(letters)
            await self._emit(await self._blocking(self.scorer.score))
            await self.redis.update_channels(self.scorer.take_latest().items())
            await self._snapshot_due()

    async def _first_sight(self, record: RecordRef) -> list[DeadLetter]:
        """Before a channel's first record in this process: restore its snapshot and catch up.

        The catch-up stops at the partition's first record in this process: later records were
        delivered here, so none of them is this channel's. Where channels share a partition this
        keeps a fresh start from re-reading the partition from offset 0 once per channel.
        """
        channel = (record.key or b"").decode(errors="replace")
        if not channel or channel in self.seen:
            return []
        spec = self._spec(channel)
        if spec is None or spec.topic != record.topic:
            return []  # a bad key (a dead letter): no stream to restore, and no re-read for it
        self.seen.add(channel)
        self.channel_tp[channel] = TP(record.topic, record.partition)
        snapshot = self.snapshots.get(channel)
        start = 0
        if snapshot is not None:
            stream = ChannelStream.restore(snapshot, self.params)
            self.scorer.streams[channel] = stream
            start = stream.last_offset + 1
        stop = min(record.offset, self.first_offsets.get(TP(record.topic, record.partition), record.offset))
        if stop <= start:
            return []
        tp = TopicPartition(record.topic, record.partition)
        missed = await self._blocking(lambda: list(read_range(self.settings, {tp: (start, stop)})))
        letters = []
        for old in missed:
            if old.key is None or old.key.decode(errors="replace") == channel:
                letter = self.scorer.accept(
                    RecordRef(old.topic, old.partition, old.offset, old.key, old.value)
                )
                if letter is not None:
                    letters.append(letter)
        log.info("channel %s: restored at offset %d, caught up %d records", channel, start, len(missed))
        return letters

    async def _dead_letters(self, letters: list[DeadLetter]) -> None:
        pending = []
        for letter in letters:
            self.metrics.dead_letters.labels(letter.reason).inc()
            log.warning("dead letter %s at %s[%d]@%d: %s", letter.reason, letter.record.topic,
                        letter.record.partition, letter.record.offset, letter.detail)  # fmt: skip
            headers = {
                "reason": letter.reason.encode(),
                "detail": letter.detail[:500].encode(),
                "source_topic": letter.record.topic.encode(),
                "source_partition": str(letter.record.partition).encode(),
                "source_offset": str(letter.record.offset).encode(),
            }
            pending.append(
                await self.deadletters.send(key=letter.record.key, value=letter.record.value, headers=headers)
            )
        for future in pending:
            await future

    async def _send_anomaly(self, key: bytes, value: bytes, headers: dict[str, bytes]) -> None:
        await (await self.anomalies.send(key=key, value=value, headers=headers))

    async def _emit(self, events: list[AnomalyEvent]) -> None:
        for event in events:
            log.info("anomaly %s %s %s rows %d-%d score %.3f", event.status, event.channel, event.event_id,
                     event.start_index, event.end_index, event.score)  # fmt: skip
            await self.anomaly_sink.emit(event, self._send_anomaly)
            await self.redis.emit(event)

    async def _snapshot_due(self) -> None:
        """Snapshot channels that advanced ``snapshot_every`` points since their last snapshot."""
        every = self.settings.worker.snapshot_every
        for channel, stream in list(self.scorer.streams.items()):
            if (stream.next_index or 0) - self.snapshot_index.get(channel, 0) >= every:
                await self._snapshot(channel, stream)

    async def _snapshot(self, channel: str, stream: ChannelStream) -> None:
        payload = stream.snapshot()
        await (await self.state_topic.send(key=channel.encode(), value=payload))
        self.snapshots[channel] = payload
        self.snapshot_index[channel] = stream.next_index or 0
        self.metrics.snapshots.inc()

    async def on_assigned(self, app: faust.App, assigned: set[TP], **_: Any) -> None:
        """Reload what predecessors left: channel snapshots and the emissions already sent."""
        self.reloaded.clear()
        self.metrics.assigned_partitions.set(len(app.consumer.assignment()))

        def reload() -> dict[str, bytes]:
            latest: dict[str, bytes] = {}
            for record in read_topic(self.settings, self.settings.kafka.state_topic):
                if record.key is None:
                    continue
                if record.value is None:  # a tombstone: the channel's stream was reset
                    latest.pop(record.key.decode(), None)
                else:
                    latest[record.key.decode()] = record.value
            return latest

        # both reads mostly wait on the broker: side by side they cost one wait, not two
        emitted: int
        self.snapshots, emitted = await asyncio.gather(
            self._blocking(reload), asyncio.to_thread(self.anomaly_sink.load)
        )
        self.reloaded.set()
        log.info("assigned %d partitions; %d channel snapshots, %d emissions known",
                 len(assigned), len(self.snapshots), emitted)  # fmt: skip

    async def on_revoked(self, app: faust.App, revoked: set[TP], **_: Any) -> None:
        """Hand revoked channels over: snapshot them now, then forget them."""
        async with self.lock:
            for channel, tp in list(self.channel_tp.items()):
                if tp in revoked:
                    stream = self.scorer.streams.pop(channel, None)
                    if stream is not None:
                        await self._snapshot(channel, stream)
                    self.seen.discard(channel)
                    del self.channel_tp[channel]
            for tp in revoked:
                self.first_offsets.pop(tp, None)

    async def discover_topics(self) -> None:
        try:
            # not on the scoring thread: a scoring batch would wait behind the broker's topic list
            names = await asyncio.to_thread(self.matching_topics)
        except Exception as exc:  # broker briefly away: try again at the next tick
            log.warning("topic discovery failed: %s", exc)
            return
        new = [name for name in names if name not in self.telemetry.topics]
        if new:
            log.info("subscribing to %d new telemetry topic(s): %s", len(new), ", ".join(new[:5]))
            self.telemetry.topics = [*self.telemetry.topics, *new]
            self.app.topics._flag_changes()  # type: ignore[attr-defined]

    def _busy_channels(self) -> frozenset[str]:
        """Channels whose partition still has records beyond what this worker processed."""
        busy = set()
        for channel, tp in self.channel_tp.items():
            highwater = self.app.consumer.highwater(tp)
            if highwater is None or self.positions.get(tp, -1) + 1 < highwater:
                busy.add(channel)
        return frozenset(busy)

    async def close_idle(self) -> None:
        async with self.lock:
            events = self.scorer.close_idle(self.settings.worker.idle_close_s, self._busy_channels())
            await self._emit(events)
            for channel in {event.channel for event in events}:
                await self._snapshot(channel, self.scorer.streams[channel])

    async def export_lag(self) -> None:
        for tp in self.app.consumer.assignment():
            highwater = self.app.consumer.highwater(tp)
            if highwater is not None:
                lag = highwater - (self.positions.get(tp, -1) + 1)
                self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, lag))

    async def metrics_view(self, web: Any, request: Any) -> Any:
        return web.bytes(
            generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0] + "; version=0.0.4"
        )

    async def health_view(self, web: Any, request: Any) -> Any:
        return web.json({"status": "ok", "worker": self.name})

    async def ready_view(self, web: Any, request: Any) -> Any:
        assigned = len(self.app.consumer.assignment())
        try:
            await self._blocking(self.model_registry.channels)
            registry = True
        except Exception:
            registry = False
        ready = assigned > 0 and registry
        body = {"ready": ready, "assigned_partitions": assigned, "registry_reachable": registry}
        return web.json(body, status=200 if ready else 503)

    async def models_view(self, web: Any, request: Any) -> Any:
        return web.json({"models": self.cache.versions(), "bytes": self.cache.nbytes})

    def run(self) -> None:
        """Run until SIGINT/SIGTERM; the metrics address is announced to the local Prometheus."""
        address = f"{self.settings.worker.metrics_host}:{self.settings.worker.metrics_port}"
        target = register_scrape_target(self.settings, "worker", self.name, address)
        self.metrics.worker_up.set(1)
        self.cache.start()
        try:
            worker = faust.Worker(self.app, loglevel=self.settings.log_level, quiet=True)
            logging.getLogger("kafka").setLevel(logging.ERROR)
            worker.execute_from_commandline()
        finally:
            self.metrics.worker_up.set(0)
            unregister_scrape_target(target)
            self.cache.stop()
            self.executor.shutdown(wait=False)
            self.engine.close()
            if self.admin is not None:
                self.admin.close()
