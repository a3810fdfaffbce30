"""`tmstream worker`, `tmstream alerts tail`, `tmstream anomalies list|reconcile`: scoring and its
output."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import typer

from tmstream.cli.context import console, emit_json, settings_from

alerts_app = typer.Typer(no_args_is_help=True, help="Follow anomaly events on the `anomalies` topic.")
anomalies_app = typer.Typer(no_args_is_help=True, help="Anomaly events recorded in Redis.")


def worker(
    ctx: typer.Context,
    metrics_port: int | None = typer.Option(None, help="Port of /metrics, /health, /ready, /models."),
    name: str | None = typer.Option(None, help="Worker name (default host-port)."),
) -> None:
    """Consume telemetry topics, score every window and emit anomaly events (until Ctrl-C)."""
    from stream_workers.app import ScoringWorker

    settings = settings_from(ctx, worker__metrics_port=metrics_port)
    logging.getLogger("stream_workers").setLevel(settings.log_level)  # before Faust sets up logging
    ScoringWorker(settings, name=name).run()


def event_line(event: dict[str, Any]) -> str:
    """One short line per event (fits 80 columns; ``--json`` has every field)."""
    colour = {"critical": "red", "warning": "yellow"}.get(event["severity"], "cyan")
    return (
        f"[{colour}]{event['severity']:8}[/] {event['status']:7} {event['spacecraft']:4} "
        f"{event['channel']:6} rows {event['start_index']}-{event['end_index']} "
        f"score {event['score']:.2f} {event['subsystem']} {event['event_id'][:8]}"
    )


@alerts_app.command("tail")
def alerts_tail(
    ctx: typer.Context,
    spacecraft: str | None = typer.Option(None, help="Only SMAP or MSL."),
    severity: str | None = typer.Option(None, help="Only info, warning or critical."),
    from_beginning: bool = typer.Option(False, help="Start at the oldest event, not the newest."),
    timeout: float | None = typer.Option(None, help="Stop after this many seconds without events."),
    as_json: bool = typer.Option(False, "--json", help="One event object per line (tmstream.anomaly.v1)."),
) -> None:
    """Print anomaly events as they arrive."""
    from kafka import KafkaConsumer

    settings = settings_from(ctx)
    consumer = KafkaConsumer(
        settings.kafka.anomalies_topic,
        **settings.kafka.client_options(),
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
        consumer_timeout_ms=int(timeout * 1000) if timeout else float("inf"),
    )
    try:
        for record in consumer:
            event = json.loads(record.value)
            if spacecraft and event["spacecraft"] != spacecraft.upper():
                continue
            if severity and event["severity"] != severity.lower():
                continue
            if as_json:
                print(json.dumps(event, sort_keys=True), flush=True)
            else:
                console.print(event_line(event), highlight=False)
    finally:
        consumer.close()


@anomalies_app.command("list")
def anomalies_list(
    ctx: typer.Context,
    channel: str | None = typer.Option(None, help="Only this channel."),
    since: float | None = typer.Option(None, help="Only events detected in the last N seconds."),
    as_json: bool = typer.Option(False, "--json", help="A list of event objects (latest emission each)."),
) -> None:
    """The latest state of every recorded anomaly (from Redis)."""
    from stream_workers.sinks.redis_sink import STREAM_KEY
    from tmstream.ground.redis import redis_client

    client = redis_client(settings_from(ctx))
    latest: dict[str, dict[str, Any]] = {}
    entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(STREAM_KEY)  # type: ignore[assignment]
    for _, fields in entries:
        event = json.loads(fields[b"event"])
        latest[event["event_id"]] = event
    events = sorted(latest.values(), key=lambda e: (e["channel"], e["start_index"]))
    if channel:
        events = [e for e in events if e["channel"] == channel]
    if since is not None:
        cutoff = (time.time() - since) * 1000
        events = [e for e in events if e["detected_at_ms"] >= cutoff]
    if as_json:
        emit_json(events)
        return
    for event in events:
        console.print(event_line(event), highlight=False)
    console.print(f"{len(events)} anomalies")


@anomalies_app.command("reconcile")
def anomalies_reconcile(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="The counts as a JSON object."),
) -> None:
    """Write into Redis every emission on the `anomalies` topic that Redis lacks (after Redis lost
    data: a kill -9 under appendfsync everysec, a flush). Workers do this for what they read back."""
    import asyncio

    from prometheus_client import CollectorRegistry
    from pydantic import ValidationError
    from redis.exceptions import RedisError

    from stream_workers.events import AnomalyEvent
    from stream_workers.metrics import WorkerMetrics
    from stream_workers.sinks.redis_sink import RedisSink
    from tmstream.ground.exceptions import StackError
    from tmstream.ground.topic_reader import read_topic

    settings = settings_from(ctx)
    topic = settings.kafka.anomalies_topic
    events, foreign = [], 0
    for record in read_topic(settings, topic):
        try:
            events.append(AnomalyEvent.from_bytes(record.value or b""))
        except ValidationError:
            foreign += 1

    async def write() -> int:
        sink = RedisSink(settings, WorkerMetrics.on(CollectorRegistry()), attempts=5)
        try:
            return await sink.reconcile(events)
        finally:
            await sink.close()

    try:
        written = asyncio.run(write())
    except RedisError as exc:
        raise StackError(f"cannot write to Redis: {exc}") from None
    counts = {"topic": topic, "emissions": len(events), "written": written, "not_events": foreign}
    if as_json:
        emit_json(counts)
        return
    console.print(
        f"{len(events)} emissions on {topic}: {written} were missing in Redis and are written now"
        + (f"; {foreign} records were not anomaly events" if foreign else "")
    )
