"""The ``tmstream`` command: global flags, sub-commands, and one clear line for every user error."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import typer
from rich.markup import escape

from tmstream.cli import (
    bench,
    dashboards,
    data,
    demo,
    evaluate,
    models,
    producers,
    report,
    stack,
    worker,
    workorders,
)
from tmstream.cli.context import err_console
from tmstream.cli.logs import FORMAT, configure_logging
from tmstream.ground.exceptions import TmstreamError
from tmstream.ground.settings import load_settings

EXTRAS = {"matplotlib": "report", "tensorflow": "train", "keras": "train", "testcontainers": "docker"}

app = typer.Typer(
    name="tmstream",
    help="Streaming predictive maintenance for spacecraft telemetry (Telemanom on Kafka).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(stack.app, name="stack")
app.add_typer(data.app, name="data")
app.add_typer(producers.topics_app, name="topics")
app.add_typer(producers.channels_app, name="channels")
app.command("replay")(producers.replay)
app.add_typer(evaluate.app, name="evaluate")
app.command("report")(report.report)
app.add_typer(models.app, name="models")
app.command("train")(models.train)
app.command("predict")(models.predict)
bench.add_to(app)
app.command("worker")(worker.worker)
app.command("demo")(demo.demo)
app.add_typer(worker.alerts_app, name="alerts")
app.add_typer(worker.anomalies_app, name="anomalies")
app.add_typer(workorders.app, name="workorders")
app.add_typer(dashboards.app, name="dashboards")


@app.callback()
def global_options(
    ctx: typer.Context,
    environment: str | None = typer.Option(
        None, "--environment", "-e", help="Config overlay: development, testing or production."
    ),
    state_dir: Path | None = typer.Option(None, help="Folder for the local stack's state."),
    data_dir: Path | None = typer.Option(None, help="Telemanom data folder (train/, test/, labels)."),
    log_level: str | None = typer.Option(None, help="DEBUG, INFO, WARNING or ERROR."),
) -> None:
    """Global flags become setting overrides; the log level is applied before any command runs."""
    overrides = {
        "environment": environment,
        "state_dir": str(state_dir.resolve()) if state_dir else None,
        "data_dir": str(data_dir.resolve()) if data_dir else None,
        "log_level": log_level,
    }
    ctx.obj = {key: value for key, value in overrides.items() if value is not None}
    configure_logging(load_settings(ctx.obj).log_level, flag=log_level is not None)


def main() -> None:
    """Console-script entry point: user errors become one line on stderr and a non-zero exit.

    Usage errors are Typer's own (usage text, exit 2); everything else that escapes a command is
    reduced to one line, with the traceback only at ``--log-level DEBUG``.
    """
    logging.basicConfig(level=logging.WARNING, format=FORMAT)
    try:
        app()
    except TmstreamError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            raise
        err_console.print(f"[bold red]error:[/] {escape(_unexpected(exc))}", highlight=False, soft_wrap=True)
        sys.exit(1)


def _unexpected(exc: Exception) -> str:
    """One line for an error no command turned into a TmstreamError; a missing extra names its install."""
    if isinstance(exc, ModuleNotFoundError):
        extra = EXTRAS.get((exc.name or "").split(".")[0])
        if extra is not None:
            return f"this command needs {exc.name}: pip install 'telemanom-stream[{extra}]'"
    return f"unexpected {type(exc).__name__}: {exc}"
