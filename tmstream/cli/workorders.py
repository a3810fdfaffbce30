"""`tmstream workorders serve | list | show | ack | assign | resolve`: maintenance work orders.

Everything but ``serve`` works on Redis directly, so operators need no running service; the
service is what turns anomaly events into orders and serves the same actions as a JSON API.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import TYPE_CHECKING

import typer

from tmstream.cli.context import console, emit_json, settings_from
from tmstream.ground.exceptions import TmstreamError
from tmstream.ground.settings import Settings

if TYPE_CHECKING:
    from workorders.model import WorkOrder
    from workorders.store import WorkOrderStore

app = typer.Typer(no_args_is_help=True, help="Maintenance work orders opened from anomaly events.")
JSON_OPTION = typer.Option(False, "--json", help="Stable machine-readable keys (see docs/WORKORDERS.md).")
BY_OPTION = typer.Option(None, "--by", help="Who does it (recorded on the order).")


def _store(settings: Settings) -> WorkOrderStore:
    from tmstream.ground.redis import redis_client
    from workorders.store import WorkOrderStore

    return WorkOrderStore(redis_client(settings), settings.workorders.due_hours)


def _time(ms: int | None) -> str:
    return "-" if ms is None else dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M")


def _line(order: WorkOrder, now: int) -> str:
    colour = {"P1": "red", "P2": "yellow"}.get(order.priority, "cyan")
    late = " [bold red]OVERDUE[/]" if order.overdue(now) else ""
    return (
        f"{order.id}  [{colour}]{order.priority}[/] {order.state:12} {order.spacecraft:4} {order.channel:6} "
        f"{order.subsystem:15} due {_time(order.due_ms)}{late}  {order.assignee or 'unassigned'}  "
        f"{len(order.event_ids)} anomal{'y' if len(order.event_ids) == 1 else 'ies'}"
    )


def _print(order: WorkOrder, as_json: bool) -> None:
    from workorders.store import now_ms

    if as_json:
        emit_json(order.to_json(now_ms()))
        return
    console.print(_line(order, now_ms()), highlight=False)


@app.command("serve")
def serve(
    ctx: typer.Context,
    api_port: int | None = typer.Option(None, help="Port of the JSON API and /metrics."),
    name: str | None = typer.Option(None, help="Service name (default host-port)."),
) -> None:
    """Consume anomaly events into work orders and serve the JSON API (until Ctrl-C)."""
    from workorders.service import WorkOrderService

    service = WorkOrderService(settings_from(ctx, workorders__api_port=api_port), name=name)
    asyncio.run(service.serve())
    if service.failure:
        raise TmstreamError(f"work-order consumer stopped: {service.failure}")


@app.command("list")
def list_orders(
    ctx: typer.Context,
    state: str | None = typer.Option(None, help="open, acknowledged or resolved."),
    priority: str | None = typer.Option(None, help="P1, P2 or P3."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Work orders, soonest due first."""
    from workorders.model import PRIORITIES, STATES
    from workorders.store import now_ms

    if state is not None and state not in STATES:
        raise typer.BadParameter(f"--state must be one of {', '.join(STATES)}")
    if priority is not None and priority.upper() not in PRIORITIES:
        raise typer.BadParameter(f"--priority must be one of {', '.join(PRIORITIES)}")
    orders = _store(settings_from(ctx)).orders(state, priority.upper() if priority else None)  # type: ignore[arg-type]
    now = now_ms()
    if as_json:
        emit_json([order.to_json(now) for order in orders])
        return
    for order in orders:
        console.print(_line(order, now), highlight=False)
    console.print(f"{len(orders)} work orders")


@app.command("show")
def show(
    ctx: typer.Context, order_id: str = typer.Argument(..., metavar="ID"), as_json: bool = JSON_OPTION
) -> None:
    """One work order with its anomalies and notes."""
    order = _store(settings_from(ctx)).get(order_id)
    if as_json:
        _print(order, True)
        return
    _print(order, False)
    console.print(
        f"opened {_time(order.opened_ms)}  acknowledged {_time(order.acknowledged_ms)}  "
        f"resolved {_time(order.resolved_ms)}\nseverity {order.severity}, max score {order.max_score:.3f}, "
        f"rows {order.first_index}-{order.last_index}, anomaly {order.anomaly_status}\n"
        f"anomalies: {', '.join(order.event_ids)}",
        highlight=False,
    )
    for note in order.notes:
        console.print(f"  {_time(note.at_ms)} {note.author or ''}: {note.text}", highlight=False)


@app.command("ack")
def ack(
    ctx: typer.Context,
    order_id: str = typer.Argument(..., metavar="ID"),
    by: str | None = BY_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Acknowledge an open work order."""
    _print(_store(settings_from(ctx)).acknowledge(order_id, by), as_json)


@app.command("assign")
def assign(
    ctx: typer.Context,
    order_id: str = typer.Argument(..., metavar="ID"),
    who: str = typer.Argument(..., metavar="WHO"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Assign an unresolved work order to someone."""
    _print(_store(settings_from(ctx)).assign(order_id, who), as_json)


@app.command("resolve")
def resolve(
    ctx: typer.Context,
    order_id: str = typer.Argument(..., metavar="ID"),
    note: str = typer.Option(..., "--note", help="What was done."),
    by: str | None = BY_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Resolve a work order with a note (an open one is acknowledged at the same time)."""
    _print(_store(settings_from(ctx)).resolve(order_id, note, by), as_json)
