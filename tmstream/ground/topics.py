"""Kafka admin: bounded connection retries, idempotent topic creation, topic descriptions.

The local broker runs with ``auto.create.topics.enable=false`` so a typo never silently creates a
topic; everything tmstream writes to is created here with the configured partitions, replication
factor and retention.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
from kafka.errors import KafkaError, TopicAlreadyExistsError

from tmstream.ground.exceptions import BrokerUnavailableError, TopicAdminError
from tmstream.ground.retries import Backoff, retrying
from tmstream.ground.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class ConnectPolicy:
    """Bounded retries while no broker answers: ``attempts`` tries, backoff doubling from ``backoff_s``."""

    attempts: int = 3
    bootstrap_timeout_ms: int = 2000
    backoff_s: float = 0.5


@dataclass(frozen=True)
class TopicResult:
    topic: str
    status: Literal["created", "exists"]


def connect_with_retries(
    settings: Settings, build: Callable[[int], T], policy: ConnectPolicy, what: str
) -> T:
    """``build(bootstrap_timeout_ms)`` until a broker answers, else ``BrokerUnavailableError``."""
    started = time.monotonic()
    servers = settings.kafka.bootstrap_servers

    def failed(exc: BaseException, attempt: int) -> None:  # DEBUG: the user gets the one error line
        log.debug(
            "%s: no Kafka broker at %s (attempt %d/%d): %s", what, servers, attempt, policy.attempts, exc
        )

    backoff = Backoff(first_s=policy.backoff_s, attempts=policy.attempts)
    try:
        return retrying((KafkaError,), backoff, on_failure=failed)(build, policy.bootstrap_timeout_ms)
    except KafkaError as last:
        raise BrokerUnavailableError(
            f"cannot reach Kafka at {servers} ({what}): {policy.attempts} attempts "
            f"in {time.monotonic() - started:.1f} s, last: {type(last).__name__}; is the stack up "
            "(tmstream stack up) or TMSTREAM_KAFKA_BOOTSTRAP right?"
        ) from last


def connect_admin(settings: Settings, policy: ConnectPolicy = ConnectPolicy()) -> KafkaAdminClient:
    """An admin client for a long-lived caller, which closes it."""
    return connect_with_retries(
        settings,
        lambda timeout_ms: KafkaAdminClient(
            **settings.kafka.client_options(), client_id="tmstream-admin", bootstrap_timeout_ms=timeout_ms
        ),
        policy,
        "admin",
    )


@contextmanager
def admin_client(settings: Settings, policy: ConnectPolicy = ConnectPolicy()) -> Iterator[KafkaAdminClient]:
    client = connect_admin(settings, policy)
    try:
        yield client
    finally:
        client.close()


def ensure_topics(
    settings: Settings, topics: Iterable[str], policy: ConnectPolicy = ConnectPolicy()
) -> list[TopicResult]:
    """Create the missing topics; existing ones are left as they are (idempotent)."""
    wanted = list(dict.fromkeys(topics))
    if not wanted:
        return []
    with admin_client(settings, policy) as admin:
        existing = set(admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        create_topics(settings, admin, missing)
    return [TopicResult(name, "created" if name in missing else "exists") for name in wanted]


def create_topics(settings: Settings, admin: KafkaAdminClient, names: list[str]) -> None:
    """Create ``names`` (known to be missing) through the caller's client, with the configured
    partitions, replication factor and retention, and wait until the broker lists them; one that
    another client created meanwhile is not an error."""
    if not names:
        return
    kafka = settings.kafka
    options = {
        "num_partitions": kafka.topic_partitions,
        "replication_factor": kafka.replication_factor,
        "configs": {"retention.ms": str(kafka.retention_ms)},
    }
    try:
        response = admin.create_topics(
            {name: options for name in names}, raise_errors=False, wait_for_metadata=False
        )
    except KafkaError as exc:
        raise TopicAdminError(f"creating topics failed: {type(exc).__name__}: {exc}") from exc
    _raise_first_failure(response)
    admin.wait_for_topics(names, timeout_ms=30_000)


def describe_topics(settings: Settings, policy: ConnectPolicy = ConnectPolicy()) -> list[dict[str, Any]]:
    """Name, partition count and retention of every non-internal topic, sorted by name."""
    with admin_client(settings, policy) as admin:
        topics = [t for t in admin.describe_topics() if not t.get("is_internal")]
        names = sorted(t["name"] for t in topics)
        retention = _retention_ms(admin, names)
    by_name = {t["name"]: t for t in topics}
    return [
        {
            "topic": name,
            "partitions": len(by_name[name]["partitions"]),
            "replication_factor": max(
                (len(p["replica_nodes"]) for p in by_name[name]["partitions"]), default=0
            ),
            "retention_ms": retention.get(name),
        }
        for name in names
    ]


def _retention_ms(admin: KafkaAdminClient, names: list[str]) -> dict[str, int | None]:
    if not names:
        return {}
    resources = [ConfigResource(ConfigResourceType.TOPIC, name, ["retention.ms"]) for name in names]
    described = admin.describe_configs(resources, config_filter="all").get("topic", {})
    return {
        name: int(value) if (value := configs.get("retention.ms", {}).get("value")) is not None else None
        for name, configs in described.items()
    }


def _raise_first_failure(response: dict[str, Any]) -> None:
    for topic in response.get("topics", []):
        code = topic.get("error_code", 0)
        if code and code != TopicAlreadyExistsError.errno:
            message = topic.get("error_message") or ""
            raise TopicAdminError(f"cannot create topic {topic.get('name')}: error {code} {message}".strip())
