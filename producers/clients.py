"""The Kafka producer clients behind ``TelemetryPublisher``, chosen by ``kafka.producer_client``.

- ``kafka-python`` (the default, a core dependency): pure Python. Each record costs about 15-20 µs
  of interpreter time in ``send`` (a future, a lock, varints, a set of every topic it knows) plus
  its completion on the sender thread, which shares the GIL: about 35,000-60,000 points/s on the
  development machine, less when other processes take the CPU.
- ``confluent-kafka`` (the optional extra ``confluent``): librdkafka in C. A record is one C call
  and batching, compression and the network run on librdkafka's own threads, without the GIL:
  6-15 times the points per second here (docs/PERFORMANCE.md, "Producer").

Both send with ``acks=all`` and idempotence, to the partition the publisher computed (murmur2 of
the key, Kafka's default), so a channel's points stay in order on one partition, and both report
every record's delivery to the channel's ``ChannelDelivery``.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from kafka import KafkaProducer
from kafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

from producers.exceptions import PublishError
from producers.metrics import ChannelDelivery
from tmstream.ground.exceptions import ConfigError
from tmstream.ground.settings import Settings
from tmstream.ground.topics import ConnectPolicy, connect_with_retries

log = logging.getLogger(__name__)
# kafka-python's option names (``KafkaSettings.client_options``) in librdkafka's spelling
LIBRDKAFKA_NAMES = {
    "bootstrap_servers": "bootstrap.servers",
    "security_protocol": "security.protocol",
    "sasl_mechanism": "sasl.mechanism",
    "sasl_plain_username": "sasl.username",
    "sasl_plain_password": "sasl.password",
    "ssl_cafile": "ssl.ca.location",
}


@dataclass(frozen=True)
class ProducerTuning:
    """Batching knobs; docs/PERFORMANCE.md ("Producer") has what each choice measured."""

    linger_ms: int = 20
    batch_size: int = 512 * 1024
    compression: str | None = None  # None: ``default_compression()``; "none" sends uncompressed
    delivery_timeout_ms: int = 30_000
    max_block_ms: int = 10_000
    max_in_flight_points: int = 200_000


def default_compression() -> str:
    """lz4 when python-lz4 is installed (cheap on CPU, and it halves the bytes), gzip otherwise."""
    return "lz4" if importlib.util.find_spec("lz4") else "gzip"


class ProducerClient(Protocol):
    """What the publisher needs of a Kafka producer; ``handed`` counts the records given to it."""

    handed: int

    def partitions(self, topic: str) -> list[int]:
        """The topic's partitions, sorted; ``PublishError`` when it does not exist."""

    def send(
        self,
        topic: str,
        partition: int,
        key: bytes,
        payloads: Sequence[bytes],
        timestamp_ms: int,
        delivery: ChannelDelivery,
    ) -> None:
        """Hand the records over; each one's delivery is reported to ``delivery``."""

    def wait(self, seconds: float) -> None:
        """Let delivery reports arrive for up to ``seconds`` (backpressure)."""

    def flush(self, timeout_s: float | None) -> bool:
        """Wait until every record handed over is acknowledged or failed; False on timeout."""

    def close(self, timeout_s: float) -> None:
        """Release the client (``timeout_s`` 0: drop what is still queued)."""


def open_client(
    settings: Settings, tuning: ProducerTuning, compression: str, connect: ConnectPolicy, client_id: str
) -> ProducerClient:
    """The client ``kafka.producer_client`` names, connected (``BrokerUnavailableError`` if no
    broker answers within ``connect``)."""
    if settings.kafka.producer_client == "confluent-kafka":
        return ConfluentClient(settings, tuning, compression, connect, client_id)
    return KafkaPythonClient(settings, tuning, compression, connect, client_id)


class KafkaPythonClient:
    """kafka-python's ``KafkaProducer``; deliveries are reported on its sender thread."""

    def __init__(
        self,
        settings: Settings,
        tuning: ProducerTuning,
        compression: str,
        connect: ConnectPolicy,
        client_id: str,
    ) -> None:
        self.handed = 0
        self._producer: Any = connect_with_retries(
            settings,
            lambda timeout_ms: KafkaProducer(
                **settings.kafka.client_options(),
                client_id=client_id,
                acks="all",
                enable_idempotence=True,
                compression_type=None if compression == "none" else compression,
                linger_ms=tuning.linger_ms,
                batch_size=tuning.batch_size,
                max_request_size=max(tuning.batch_size * 2, 1_048_576),
                delivery_timeout_ms=tuning.delivery_timeout_ms,
                request_timeout_ms=min(tuning.delivery_timeout_ms - tuning.linger_ms, 30_000),
                max_block_ms=tuning.max_block_ms,
                bootstrap_timeout_ms=timeout_ms,
            ),
            connect,
            "producer",
        )

    def partitions(self, topic: str) -> list[int]:
        try:
            return sorted(self._producer.partitions_for(topic) or ())
        except KafkaTimeoutError as exc:
            raise PublishError(
                f"topic {topic} does not exist or has no leader (run `tmstream topics create`)"
            ) from exc

    def send(
        self,
        topic: str,
        partition: int,
        key: bytes,
        payloads: Sequence[bytes],
        timestamp_ms: int,
        delivery: ChannelDelivery,
    ) -> None:
        send, ok, failed = self._producer.send, delivery.ok, delivery.failed
        sent = 0
        try:
            for payload in payloads:
                future = send(topic, value=payload, key=key, partition=partition, timestamp_ms=timestamp_ms)
                future.add_callback(ok).add_errback(failed)
                sent += 1
        except KafkaError as exc:
            raise PublishError(f"sending to {topic} failed: {type(exc).__name__}: {exc}") from exc
        finally:
            self.handed += sent

    def wait(self, seconds: float) -> None:
        time.sleep(seconds)

    def flush(self, timeout_s: float | None) -> bool:
        try:
            self._producer.flush(timeout=timeout_s)
        except KafkaTimeoutError:
            return False
        return True

    def close(self, timeout_s: float) -> None:
        self._producer.close(timeout=timeout_s)


class ConfluentClient:
    """confluent-kafka's ``Producer``; deliveries are reported in ``poll``, after every chunk."""

    def __init__(
        self,
        settings: Settings,
        tuning: ProducerTuning,
        compression: str,
        connect: ConnectPolicy,
        client_id: str,
    ) -> None:
        try:
            import confluent_kafka
        except ImportError:
            raise ConfigError(
                "kafka.producer_client is confluent-kafka, but confluent-kafka is not installed: "
                "pip install 'telemanom-stream[confluent]' (or set kafka.producer_client: kafka-python)"
            ) from None
        self._kafka = confluent_kafka
        self._max_block_s = tuning.max_block_ms / 1000
        self.handed = 0
        config = {
            **librdkafka_options(settings),
            "client.id": client_id,
            "acks": "all",
            "enable.idempotence": True,
            "compression.type": compression,
            "linger.ms": tuning.linger_ms,
            "batch.size": tuning.batch_size,
            "message.max.bytes": max(tuning.batch_size * 2, 1_048_576),
            "delivery.timeout.ms": tuning.delivery_timeout_ms,
            "request.timeout.ms": min(tuning.delivery_timeout_ms - tuning.linger_ms, 30_000),
            # the publisher caps what is unacknowledged; librdkafka's own queue must not be lower
            "queue.buffering.max.messages": 2 * tuning.max_in_flight_points,
            "logger": logging.getLogger("producers.librdkafka"),
        }

        def build(timeout_ms: int) -> Any:
            producer = confluent_kafka.Producer(config)
            try:
                producer.list_topics(timeout=timeout_ms / 1000)  # librdkafka connects lazily
            except confluent_kafka.KafkaException as exc:
                raise KafkaConnectionError(str(exc)) from exc  # what connect_with_retries retries
            return producer

        self._producer: Any = connect_with_retries(settings, build, connect, "producer")

    def partitions(self, topic: str) -> list[int]:
        try:
            found = self._producer.list_topics(topic, timeout=self._max_block_s).topics.get(topic)
        except self._kafka.KafkaException as exc:
            raise PublishError(f"topic {topic}: no metadata: {exc}") from exc
        if found is None or found.error is not None:
            raise PublishError(
                f"topic {topic} does not exist or has no leader (run `tmstream topics create`): "
                f"{found and found.error}"
            )
        return sorted(found.partitions)

    def send(
        self,
        topic: str,
        partition: int,
        key: bytes,
        payloads: Sequence[bytes],
        timestamp_ms: int,
        delivery: ChannelDelivery,
    ) -> None:
        produce, report = self._producer.produce, delivery.report
        sent = 0
        try:
            for payload in payloads:
                try:
                    produce(topic, payload, key, partition, report, timestamp_ms)
                except BufferError:  # librdkafka's queue is full: serve reports, then once more
                    self._producer.poll(self._max_block_s)
                    produce(topic, payload, key, partition, report, timestamp_ms)
                sent += 1
        except (BufferError, self._kafka.KafkaException) as exc:
            raise PublishError(f"sending to {topic} failed: {type(exc).__name__}: {exc}") from exc
        finally:
            self.handed += sent
            self._producer.poll(0)

    def wait(self, seconds: float) -> None:
        self._producer.poll(seconds)

    def flush(self, timeout_s: float | None) -> bool:
        left: int = self._producer.flush() if timeout_s is None else self._producer.flush(timeout_s)
        return left == 0

    def close(self, timeout_s: float) -> None:
        if timeout_s == 0:
            self._producer.purge()  # their delivery reports (failures) come with the flush below
        self._producer.flush(timeout_s)


def librdkafka_options(settings: Settings) -> dict[str, Any]:
    """``KafkaSettings.client_options`` (security included) in librdkafka's names."""
    return {LIBRDKAFKA_NAMES[name]: value for name, value in settings.kafka.client_options().items()}
