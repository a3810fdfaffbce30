"""`tmstream demo`: the whole pipeline on the local stack, from replay to a scored table.

It starts the stack, makes sure models are registered, starts a real worker process, replays
channels with labelled anomalies, prints anomaly events as they arrive, and ends with detected vs
labelled sequences per channel. Each run starts from a clean slate on the local stack, because a
replay re-sends indices from 0 and the worker rightly treats repeated indices as duplicates.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from tmstream.cli.context import console, settings_from
from tmstream.ground.exceptions import StackError, TmstreamError
from tmstream.ground.settings import Settings

DEMO_CHANNELS = ["P-1", "A-5", "A-6", "D-14", "F-5", "P-11"]
SYNTH_CHANNELS = 4
IDLE_CLOSE_S = 5
METRICS_SILENCE_S = 60.0  # the worker runs but its /metrics has not answered this long: give up


class DemoError(TmstreamError):
    """The demo could not complete a step."""


def demo(
    ctx: typer.Context,
    channels: str | None = typer.Option(None, help=f"Comma-separated (default {','.join(DEMO_CHANNELS)})."),
    all_channels: bool = typer.Option(False, "--all", help="Every channel of the data set."),
    speedup: float | None = typer.Option(None, help="Replay at X points/s per channel (default: max)."),
    reset: bool | None = typer.Option(
        None, "--reset/--no-reset", help="Clear topics and Redis keys first (default: yes on a local stack)."
    ),
    metrics_port: int | None = typer.Option(None, help="The demo worker's web port."),
) -> None:
    """Run the pipeline end to end on real telemetry and show what it found."""
    from producers.dataset import TelemanomDataset
    from tmstream.stack import LocalStack

    settings = settings_from(ctx, worker__metrics_port=metrics_port)
    with console.status("starting the local stack (Kafka, Redis, Prometheus)…"):
        LocalStack(settings).up()
    kafka, redis, prometheus = (
        settings.kafka.bootstrap_servers,
        settings.redis.effective_url,
        settings.prometheus.effective_url,
    )
    console.print(f"stack up: Kafka {kafka}, Redis {redis}, Prometheus {prometheus}")
    env: dict[str, str] = {}
    if not (settings.data_dir / "labeled_anomalies.csv").is_file():
        settings, env = _synthetic(ctx, settings)
    dataset = TelemanomDataset(settings.data_dir)
    chosen = _choose(dataset, channels, all_channels, env)
    _ensure_models(settings, chosen, synthetic=bool(env))
    local = not (settings.kafka.external or settings.redis.external)
    if reset if reset is not None else local:
        _reset(settings, chosen)
    elif not local:
        console.print("external services: not resetting (pass --reset to clear topics and Redis keys)")
    from producers.registry import ChannelRegistry, required_topics
    from tmstream.ground.topics import ensure_topics

    ensure_topics(settings, required_topics(settings, ChannelRegistry.load(settings.data_dir)))
    worker, log_path = _start_worker(settings, env)
    stop = threading.Event()
    events: list[dict[str, Any]] = []
    tail = threading.Thread(target=_tail_events, args=(settings, events, stop), daemon=True)
    try:
        _wait_ready(settings, worker, log_path)
        tail.start()
        _replay(settings, chosen, speedup)
        _wait_scored(settings, dataset, chosen, worker, log_path)
        time.sleep(IDLE_CLOSE_S + 3)
    finally:
        stop.set()
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
    tail.join(timeout=5)
    _summary(settings, dataset, chosen, events, log_path)


def _synthetic(ctx: typer.Context, settings: Settings) -> tuple[Settings, dict[str, str]]:
    from producers.synth import SynthSpec, write_synthetic

    folder = settings.state_dir / "demo-synthetic"
    console.print(
        f"[yellow]no NASA data at {settings.data_dir}: using a synthetic data set in {folder} "
        "(injected, labelled anomalies; small models trained now)[/]"
    )
    if not (folder / "labeled_anomalies.csv").is_file():
        write_synthetic(folder, SynthSpec(channels=SYNTH_CHANNELS))
    env = {"TMSTREAM_DATA_DIR": str(folder)}
    return settings_from(ctx, data_dir=str(folder)), env


def _choose(
    dataset: Any, channels: str | None, all_channels: bool, synthetic_env: dict[str, str]
) -> list[str]:
    if all_channels:
        return list(dict.fromkeys(info.channel for info in dataset.label_rows))
    if channels:
        names = [c.strip() for c in channels.split(",") if c.strip()]
        return [info.channel for info in dataset.select(channels=names)]
    if synthetic_env:
        return list(dataset.channels)
    return DEMO_CHANNELS


def _ensure_models(settings: Settings, channels: list[str], synthetic: bool) -> None:
    from model_store.registry import ModelRegistry

    registry = ModelRegistry(settings)
    registered = set(registry.channels())
    missing = [c for c in channels if c not in registered]
    if not missing:
        console.print(f"models: {len(channels)} channel(s) already registered")
        return
    if synthetic:
        from model_store.training import train_channel

        quick = settings.model_copy(update={"model": settings.model.model_copy(update={"epochs": 3})})
        for channel in missing:
            with console.status(f"training a model for synthetic channel {channel} (3 epochs)…"):
                train_channel(quick, registry, channel, promote=True)
        return
    folder = settings.data_dir / "reference-2018" / "models"
    with console.status(f"importing {len(missing)} reference model(s) from {folder}…"):
        registry.import_reference(folder, missing)
    console.print(f"models: imported the 2018 reference models of {', '.join(missing)}")


def _reset(settings: Settings, channels: list[str]) -> None:
    """Truncate the demo channels' topics and the sink topics, tombstone their state, clear Redis."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    from producers.registry import ChannelRegistry
    from tmstream.ground.redis import redis_client
    from tmstream.ground.topics import admin_client

    registry = ChannelRegistry.load(settings.data_dir)
    topics = [registry.topic_for(c) for c in channels] + [
        settings.kafka.anomalies_topic,
        settings.kafka.deadletter_topic,
    ]
    with admin_client(settings) as admin:
        existing = set(admin.list_topics())
        consumer = KafkaConsumer(**settings.kafka.client_options(), enable_auto_commit=False)
        try:
            partitions = [
                TopicPartition(topic, p)
                for topic in topics
                if topic in existing
                for p in consumer.partitions_for_topic(topic) or ()
            ]
            ends = consumer.end_offsets(partitions) if partitions else {}
        finally:
            consumer.close()
        if ends:
            admin.delete_records({tp: offset for tp, offset in ends.items() if offset > 0})
        if settings.kafka.state_topic in existing:
            producer = KafkaProducer(**settings.kafka.client_options(), acks="all")
            for channel in channels:
                producer.send(settings.kafka.state_topic, key=channel.encode(), value=None)
            producer.flush()
            producer.close()
    client = redis_client(settings)
    keys = list(client.scan_iter("tmstream:*"))
    if keys:
        client.delete(*keys)
    console.print(f"reset: {len(ends)} partition(s) truncated, {len(keys)} Redis key(s) removed")


def _start_worker(settings: Settings, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Path]:
    log_path = settings.state_dir / "demo" / "worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    worker_env = {
        **os.environ,
        **env,
        "TMSTREAM_ENVIRONMENT": settings.environment,
        "TMSTREAM_STATE_DIR": str(settings.state_dir),
        "TMSTREAM_WORKER_IDLE_CLOSE_S": str(IDLE_CLOSE_S),
        "TMSTREAM_WORKER_METRICS_PORT": str(settings.worker.metrics_port),
    }
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "tmstream", "worker", "--name", "demo"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=worker_env,
        )
    console.print(f"worker started (pid {worker.pid}, log {log_path})")
    return worker, log_path


def _worker_url(settings: Settings, path: str) -> str:
    return f"http://{settings.worker.metrics_host}:{settings.worker.metrics_port}{path}"


def _wait_ready(
    settings: Settings, worker: subprocess.Popen[bytes], log_path: Path, timeout: float = 120
) -> None:
    deadline = time.monotonic() + timeout
    with console.status("waiting for the worker to join the consumer group…"):
        while time.monotonic() < deadline:
            if worker.poll() is not None:
                raise DemoError(f"the worker exited with code {worker.returncode}; see {log_path}")
            try:
                with urllib.request.urlopen(_worker_url(settings, "/ready"), timeout=2) as response:
                    if json.loads(response.read()).get("ready"):
                        console.print("worker ready: partitions assigned, registry reachable")
                        return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(0.5)
    raise DemoError(f"the worker was not ready after {timeout:.0f} s; see {log_path}")


def _tail_events(settings: Settings, events: list[dict[str, Any]], stop: threading.Event) -> None:
    from kafka import KafkaConsumer

    from tmstream.cli.worker import event_line

    consumer = KafkaConsumer(
        settings.kafka.anomalies_topic,
        **settings.kafka.client_options(),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=500,
    )
    try:
        while not stop.is_set():
            for record in consumer:
                event = json.loads(record.value)
                events.append(event)
                console.print(event_line(event), highlight=False)
    finally:
        consumer.close()


def _replay(settings: Settings, channels: list[str], speedup: float | None) -> None:
    from producers.registry import ChannelRegistry
    from producers.replay import NOMINAL_POINTS_PER_S, ReplayPlan, run_replay

    registry = ChannelRegistry.load(settings.data_dir)
    plan = ReplayPlan(
        channels=registry.select(channels=channels),
        rate=speedup * NOMINAL_POINTS_PER_S if speedup else None,
    )
    console.print(f"replaying {len(channels)} channel(s): {', '.join(channels)}")
    summary = run_replay(settings, registry, plan)
    console.print(f"replay done: {summary.total_points:,} points in {summary.elapsed_s:.1f} s "
                  f"({summary.points_per_s:,.0f} points/s)")  # fmt: skip


def _scored(settings: Settings) -> float:
    with urllib.request.urlopen(_worker_url(settings, "/metrics"), timeout=5) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("tmstream_points_scored_total{")
    )


def _wait_scored(settings: Settings, dataset: Any, channels: list[str], worker: Any, log_path: Path) -> None:
    expected = sum(max(0, dataset.channels[c].test_rows - settings.model.l_s) for c in channels)
    answered = time.monotonic()
    with console.status(f"scoring {expected:,} windows…") as status:
        while True:
            if worker.poll() is not None:
                raise DemoError(f"the worker exited with code {worker.returncode}; see {log_path}")
            try:
                done = _scored(settings)
                answered = time.monotonic()
            except (urllib.error.URLError, OSError) as exc:
                # a page slower than the 5 s timeout on a busy machine is not a dead worker
                if time.monotonic() - answered > METRICS_SILENCE_S:
                    raise StackError(
                        f"cannot read the worker's metrics for {METRICS_SILENCE_S:.0f} s: {exc}"
                    ) from exc
                time.sleep(1)
                continue
            status.update(f"scoring: {done:,.0f} of {expected:,} windows")
            if done >= expected:
                return
            time.sleep(1)


def _summary(
    settings: Settings, dataset: Any, channels: list[str], events: list[dict[str, Any]], log: Path
) -> None:
    from evaluation.scoring import Counts, score_channel

    closed: dict[str, list[tuple[int, int]]] = {c: [] for c in channels}
    for event in events:
        if event["status"] == "closed" and event["channel"] in closed:
            closed[event["channel"]].append((event["start_index"], event["end_index"]))
    table = Table("channel", "spacecraft", "detected", "labelled", "TP", "FP", "FN", "precision", "recall")
    total = Counts()
    for channel in channels:
        info = dataset.channels[channel]
        counts = score_channel(closed[channel], info.sequences, info.test_rows)
        total = total + counts
        table.add_row(channel, info.spacecraft, str(len(closed[channel])), str(len(info.sequences)),
                      str(counts.tp), str(counts.false_positives), str(counts.fn),
                      f"{counts.precision:.0%}", f"{counts.recall:.0%}")  # fmt: skip
    table.add_row("total", "", str(sum(map(len, closed.values()))), "", str(total.tp),
                  str(total.false_positives), str(total.fn), f"{total.precision:.0%}", f"{total.recall:.0%}",
                  style="bold")  # fmt: skip
    console.print(table)
    kafka = settings.kafka
    console.print(
        "where to look:\n"
        f"  Prometheus   {settings.prometheus.effective_url}/graph?g0.expr=tmstream_points_scored_total\n"
        f"  topic        kcat -C -e -b {kafka.bootstrap_servers} -t {kafka.anomalies_topic}\n"
        f"  Redis        XRANGE tmstream:anomalies - +   |   HGETALL tmstream:channel:{channels[0]}\n"
        f"  CLI          tmstream anomalies list   |   tmstream alerts tail\n"
        f"  worker log   {log}\n"
        "  stop         tmstream stack down"
    )
