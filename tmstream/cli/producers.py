"""`tmstream topics | channels | replay`: the producer side of the pipeline."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from producers.exceptions import RegistryError
from producers.metrics import metrics_endpoint
from producers.publisher import RejectedRow
from producers.registry import ChannelRegistry, required_topics
from producers.replay import (
    NOMINAL_POINTS_PER_S,
    ChannelCursor,
    Replay,
    ReplayFailedError,
    ReplayObserver,
    ReplayPlan,
    ReplaySummary,
    run_replay,
)
from tmstream.cli.context import console, emit_json, err_console, settings_from
from tmstream.ground.settings import Settings
from tmstream.ground.topics import describe_topics, ensure_topics

log = logging.getLogger(__name__)
topics_app = typer.Typer(no_args_is_help=True, help="Create and list the Kafka topics tmstream uses.")
channels_app = typer.Typer(no_args_is_help=True, help="The channel registry (config/channels.yaml).")
REGISTRY_OPTION = typer.Option(
    None, "--registry", help="Channel registry file (default config/channels.yaml)."
)
JSON_OPTION = typer.Option(False, "--json", help="Stable machine-readable keys.")
REJECTS_SHOWN = 20
PLAIN_PROGRESS_EVERY_S = 5.0


def load_registry(settings: Settings, path: Path | None) -> ChannelRegistry:
    return ChannelRegistry.load(settings.data_dir, path)


def producer_settings(ctx: typer.Context) -> Settings:
    """Settings for a producer command; kafka-python's own connection chatter is kept for DEBUG.

    Every failure reaches the user as one typed error, so its per-attempt log lines only add noise.
    """
    settings = settings_from(ctx)
    if settings.log_level != "DEBUG":
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
    return settings


@topics_app.command("create")
def topics_create(
    ctx: typer.Context, registry_file: Path | None = REGISTRY_OPTION, as_json: bool = JSON_OPTION
) -> None:
    """Create every channel topic plus anomalies and the dead-letter topic (existing ones are kept)."""
    settings = producer_settings(ctx)
    results = ensure_topics(settings, required_topics(settings, load_registry(settings, registry_file)))
    if as_json:
        emit_json({"topics": [{"topic": r.topic, "status": r.status} for r in results]})
        return
    created = [r.topic for r in results if r.status == "created"]
    console.print(
        f"{len(created)} topics created, {len(results) - len(created)} already existed "
        f"({settings.kafka.topic_partitions} partitions, replication {settings.kafka.replication_factor}, "
        f"retention {settings.kafka.retention_ms} ms)"
    )


@topics_app.command("list")
def topics_list(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Topics on the broker with partitions, replication factor and retention."""
    topics = describe_topics(producer_settings(ctx))
    if as_json:
        emit_json({"topics": topics})
        return
    table = Table("topic", "partitions", "replication", "retention ms")
    for row in topics:
        table.add_row(
            row["topic"], str(row["partitions"]), str(row["replication_factor"]), str(row["retention_ms"])
        )
    console.print(table)


@channels_app.command("add")
def channels_add(
    ctx: typer.Context,
    channel: str = typer.Option(..., "--channel", help="Channel id, e.g. X-1."),
    spacecraft: str = typer.Option(..., "--spacecraft", help="Spacecraft name, e.g. SMAP."),
    features: int = typer.Option(..., "--features", min=1, help="Values per point (value + command flags)."),
    topic: str | None = typer.Option(None, "--topic", help="Topic override (default from topic_pattern)."),
    registry_file: Path | None = REGISTRY_OPTION,
) -> None:
    """Register a channel (or override one) and create its topic."""
    settings = producer_settings(ctx)
    reserved = {settings.kafka.anomalies_topic, settings.kafka.deadletter_topic}
    if topic in reserved:
        raise RegistryError(f"topic {topic} is reserved for tmstream's own use")
    registry = load_registry(settings, registry_file)
    spec = registry.add(channel, spacecraft, features, topic)
    [result] = ensure_topics(settings, [spec.topic])
    console.print(
        f"{spec.channel} ({spec.spacecraft}, {spec.features} features) → {spec.topic} "
        f"(topic {result.status}); registry {registry.path}"
    )


@channels_app.command("list")
def channels_list(
    ctx: typer.Context, registry_file: Path | None = REGISTRY_OPTION, as_json: bool = JSON_OPTION
) -> None:
    """Registered channels: topic, feature count, and whether a champion model exists."""
    settings = producer_settings(ctx)
    registry = load_registry(settings, registry_file)
    champions = champion_channels(settings)
    rows = [
        {**spec.as_dict(), "champion": None if champions is None else spec.channel in champions}
        for spec in registry.channels()
    ]
    if as_json:
        emit_json({"registry": str(registry.path), "note": registry.discovery_note, "channels": rows})
        return
    table = Table("channel", "spacecraft", "features", "topic", "source", "champion")
    for row in rows:
        champion = "unknown" if row["champion"] is None else "yes" if row["champion"] else "no"
        table.add_row(
            row["channel"], row["spacecraft"], str(row["features"]), row["topic"], row["source"], champion
        )
    console.print(table)
    if registry.discovery_note:
        err_console.print(registry.discovery_note)


def champion_channels(settings: Settings) -> set[str] | None:
    """Channels whose model has a ``champion`` alias, or None when the model store cannot tell."""
    try:
        from model_store.registry import ModelRegistry, model_name

        client = ModelRegistry(settings).client
        found = client.search_registered_models(
            filter_string=f"name LIKE '{model_name('')}%'", max_results=1000
        )
    except Exception as exc:  # the model store is optional here: any failure means "unknown"
        log.info("champion models unknown: %s", exc)
        return None
    prefix = model_name("")
    return {m.name.removeprefix(prefix) for m in found if "champion" in (m.aliases or {})}


def replay(
    ctx: typer.Context,
    spacecraft: str | None = typer.Option(None, "--spacecraft", help="Only this spacecraft's channels."),
    channels: str | None = typer.Option(
        None, "--channels", help="Comma-separated channel ids, e.g. P-1,T-1."
    ),
    split: str = typer.Option("test", "--split", help="test or train."),
    rate: float | None = typer.Option(None, "--rate", help="Points per second per channel."),
    speedup: float | None = typer.Option(
        None,
        "--speedup",
        help=f"Rate as a multiple of the nominal {NOMINAL_POINTS_PER_S:g} point/s per channel.",
    ),
    as_fast: bool = typer.Option(False, "--max", help="As fast as possible (the default without a rate)."),
    loop: bool = typer.Option(False, "--loop", help="Start over at row 0 after the last row, until stopped."),
    from_index: int = typer.Option(0, "--from-index", min=0, help="First row index of every channel."),
    until_index: int | None = typer.Option(
        None, "--until-index", min=1, help="Stop every channel before this row index (a slice)."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue each channel after its last index on Kafka."
    ),
    metrics_port: int = typer.Option(
        0, "--metrics-port", min=0, max=65535, help="/metrics port (0: any free)."
    ),
    registry_file: Path | None = REGISTRY_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the end summary as JSON."),
) -> None:
    """Replay SMAP/MSL (or any Telemanom-layout folder) into the per-channel topics."""
    if sum(x is not None and x is not False for x in (rate, speedup, as_fast or None)) > 1:
        raise typer.BadParameter("choose one of --rate, --speedup and --max")
    if split not in ("test", "train"):
        raise typer.BadParameter(f"--split must be test or train, not {split!r}")
    settings = producer_settings(ctx)
    registry = load_registry(settings, registry_file)
    names = [name.strip() for name in channels.split(",") if name.strip()] if channels else None
    plan = ReplayPlan(
        channels=registry.select(spacecraft, names),
        split="test" if split == "test" else "train",
        rate=rate if rate is not None else speedup * NOMINAL_POINTS_PER_S if speedup is not None else None,
        loop=loop,
        from_index=from_index,
        resume=resume,
        until_index=until_index,
    )
    with metrics_endpoint(settings, f"replay-{os.getpid()}", metrics_port) as address:
        observer = RichObserver() if err_console.is_terminal and not as_json else PlainObserver(address)
        try:
            with observer, stop_on_signals() as wire:
                summary = run_replay(settings, registry, plan, observer, on_start=wire)
        except ReplayFailedError as exc:
            print_summary(exc.summary, as_json)
            raise
    print_summary(summary, as_json)
    if summary.stopped_by:
        raise typer.Exit(128 + signal.Signals[summary.stopped_by].value)


@contextmanager
def stop_on_signals() -> Iterator[Any]:
    """SIGINT/SIGTERM ask the replay to stop (it flushes in-flight points); handlers restored after."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def wire(replay: Replay) -> None:
        def handler(signum: int, frame: FrameType | None) -> None:
            replay.stop(signal.Signals(signum).name)

        for sig in previous:
            signal.signal(sig, handler)

    try:
        yield wire
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class RichObserver(ReplayObserver):
    """A progress bar on the terminal (stderr)."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("replay"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(), console=err_console, transient=True,
        )  # fmt: skip
        self.task = self.progress.add_task("replay", total=None, rate="")
        self.rejects = 0
        self.t0 = time.monotonic()
        self.done = 0

    def __enter__(self) -> RichObserver:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def started(self, total_points: int | None, cursors: list[ChannelCursor]) -> None:
        self.progress.update(self.task, total=total_points)
        self.t0 = time.monotonic()

    def advanced(self, points: int) -> None:
        self.done += points
        rate = self.done / max(time.monotonic() - self.t0, 1e-6)
        self.progress.update(self.task, advance=points, rate=f"{rate:,.0f} points/s")

    def rejected(self, row: RejectedRow) -> None:
        self.rejects += 1
        if self.rejects <= REJECTS_SHOWN:
            self.progress.console.print(
                f"rejected {row.channel} index {row.index}: {row.reason} ({row.detail})"
            )


class PlainObserver(ReplayObserver):
    """Log lines every few seconds when not on a terminal."""

    def __init__(self, metrics_address: str) -> None:
        self.metrics_address = metrics_address
        self.done = 0
        self.total: int | None = None
        self.rejects = 0
        self.t0 = time.monotonic()
        self.last = self.t0

    def __enter__(self) -> PlainObserver:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def started(self, total_points: int | None, cursors: list[ChannelCursor]) -> None:
        self.total = total_points
        self.t0 = self.last = time.monotonic()
        starts = ", ".join(f"{c.spec.channel}@{c.start}" for c in cursors[:10])
        more = f" (+{len(cursors) - 10} more)" if len(cursors) > 10 else ""
        err_console.print(
            f"replay: starting {starts}{more}; {total_points or 'unbounded'} points; "
            f"metrics on http://{self.metrics_address}/metrics",
            highlight=False,
        )

    def advanced(self, points: int) -> None:
        self.done += points
        now = time.monotonic()
        if now - self.last >= PLAIN_PROGRESS_EVERY_S:
            self.last = now
            of = f"/{self.total:,}" if self.total else ""
            err_console.print(
                f"replay: {self.done:,}{of} points handed, {self.done / (now - self.t0):,.0f} points/s",
                highlight=False,
            )

    def rejected(self, row: RejectedRow) -> None:
        self.rejects += 1
        if self.rejects <= REJECTS_SHOWN:
            err_console.print(
                f"rejected {row.channel} index {row.index}: {row.reason} ({row.detail})", highlight=False
            )


def print_summary(summary: ReplaySummary, as_json: bool) -> None:
    if as_json:
        emit_json(summary.as_dict())
        return
    rejected_by: dict[str, int] = {}
    for row in summary.rejected:
        rejected_by[row.channel] = rejected_by.get(row.channel, 0) + 1
    if len(summary.points) <= 20:
        table = Table("channel", "from index", "points sent", "rejected", "failed")
        for channel, points in summary.points.items():
            table.add_row(
                channel, str(summary.start_index[channel]), f"{points:,}",
                str(rejected_by.get(channel, 0)), str(summary.errors.get(channel, 0)),
            )  # fmt: skip
        console.print(table)
    for channel, reason in summary.skipped.items():
        console.print(f"skipped {channel}: {reason}")
    if len(summary.rejected) > REJECTS_SHOWN:
        console.print(f"{len(summary.rejected):,} rows rejected in all (first {REJECTS_SHOWN} shown above)")
    stopped = f", stopped by {summary.stopped_by}" if summary.stopped_by else ""
    console.print(
        f"{summary.total_points:,} points in {len(summary.points)} channels, "
        f"{len(summary.rejected):,} rejected, "
        f"{sum(summary.errors.values()):,} failed, {summary.elapsed_s:.1f} s, "
        f"{summary.points_per_s:,.0f} points/s{stopped}",
        highlight=False,
    )
