"""`tmstream stack up | down | status`: the local Kafka, Redis and Prometheus."""

from __future__ import annotations

import typer
from rich.table import Table

from tmstream.cli.context import console, emit_json, settings_from
from tmstream.stack import LocalStack, ServiceStatus
from tmstream.stack.kafka import resolve_jars

app = typer.Typer(
    no_args_is_help=True, help="Start, check and stop the local stack (Kafka, Redis, Prometheus)."
)

JSON_HELP = "One JSON object per service: name, address, healthy, managed, pid."


def _print(statuses: list[ServiceStatus], as_json: bool) -> None:
    if as_json:
        emit_json([s.to_dict() for s in statuses])
        return
    table = Table("service", "address", "health", "run by")
    for s in statuses:
        health = "[green]healthy[/]" if s.healthy else "[red]down[/]"
        runner = f"tmstream (pid {s.pid})" if s.pid else ("external" if not s.managed else "-")
        table.add_row(s.name, s.address, health, runner)
    console.print(table)


@app.command()
def up(
    ctx: typer.Context,
    provider: str = typer.Option("local", help="local (processes) or docker (testcontainers)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Start the services that are not running and wait until each answers."""
    settings = settings_from(ctx)
    if provider == "docker":
        from tmstream.stack.docker import DockerStack

        statuses = DockerStack(settings).up()
    elif provider == "local":
        with console.status("starting the local stack…"):
            statuses = LocalStack(settings).up()
    else:
        raise typer.BadParameter(f"--provider must be local or docker, not {provider!r}")
    _print(statuses, as_json)


@app.command()
def down(ctx: typer.Context) -> None:
    """Stop the services that `stack up` started (nothing else)."""
    settings = settings_from(ctx)
    stopped = LocalStack(settings).down()
    if (settings.state_dir / "docker.json").exists():
        from tmstream.stack.docker import DockerStack

        stopped.append(f"{DockerStack(settings).down()} container(s)")
    console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing to stop")


@app.command()
def install(ctx: typer.Context) -> None:
    """Resolve the Kafka broker's jars into the user cache (done by `up` too; for offline use later)."""
    settings = settings_from(ctx)
    with console.status(f"resolving Apache Kafka {settings.kafka.version} from Maven Central…"):
        libs = resolve_jars(settings.kafka.version)
    console.print(f"Apache Kafka {settings.kafka.version}: {libs}")


@app.command()
def status(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """Each service, its address and health; exits 1 if one is down."""
    statuses = LocalStack(settings_from(ctx)).status()
    _print(statuses, as_json)
    if not all(s.healthy for s in statuses):
        raise typer.Exit(1)
