"""How the worker configures Faust: the App's options, credentials, and the classes it replaces."""

from __future__ import annotations

import ssl
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import faust
from faust.tables import TableManager
from faust.transport.utils import DefaultSchedulingStrategy
from faust.types import TP

from stream_workers.assignor import SpreadingAssignor
from tmstream.ground.settings import Settings


class PartitionRunScheduler(DefaultSchedulingStrategy):
    """Delivers each partition's fetched records as one run, partition after partition.

    Faust's default takes one record of each topic in turn: with a topic per channel, a worker
    starting on a backlog fills every channel's first window at once and scores nothing for seconds.
    """

    def iterate(self, records: Mapping[TP, list[Any]]) -> Iterator[tuple[TP, Any]]:
        for tp, messages in records.items():
            for message in messages:
                yield tp, message


class NoTablesManager(TableManager):
    """Faust's table manager without its start-up second (a sleep for tables declared late). The
    worker declares none. Faust has no setting for it and no upstream issue asks for one yet: a
    private hook (``_update_channels``) to re-check on each Faust upgrade."""

    async def on_start(self) -> None:
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()


def faust_credentials(settings: Settings) -> Any:
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


def faust_options(settings: Settings, datadir: Path) -> dict[str, Any]:
    """``faust.App`` options: raw records, acks from all replicas, no topic declaration (topics are
    created up front), frequent commits, the metrics web server bound where settings say, and the
    consumer's metadata refreshed every 5 s (aiokafka's default, 5 min, left a partition added to
    a channel topic unconsumed that long: the channel's records go to it at once). Partitions are
    spread over the group's workers by ``SpreadingAssignor``, not co-partitioned."""
    return dict(
        broker=[f"kafka://{s}" for s in settings.kafka.bootstrap_servers.split(",")],
        broker_credentials=faust_credentials(settings),
        store="memory://",
        datadir=str(datadir),
        web_host=settings.worker.metrics_host,
        web_bind=settings.worker.metrics_host,  # web_host only names it: Faust binds 0.0.0.0 by default
        web_port=settings.worker.metrics_port,
        web_enabled=True,
        consumer_auto_offset_reset="earliest",
        consumer_metadata_max_age_ms=5_000,
        producer_acks=-1,
        topic_allow_declare=False,
        topic_disable_leader=True,
        broker_commit_every=500,
        broker_commit_interval=1.0,
        stream_wait_empty=False,
        logging_config=None,
        ConsumerScheduler=PartitionRunScheduler,
        TableManager=NoTablesManager,
        PartitionAssignor=SpreadingAssignor,
        table_standby_replicas=1,  # Faust's default; at 0 its driver would bypass PartitionAssignor
    )
