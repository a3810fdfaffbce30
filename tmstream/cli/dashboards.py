"""`tmstream dashboards build | push | render-channel`: Grafana boards as code."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from tmstream.cli.context import console, emit_json, settings_from

app = typer.Typer(
    no_args_is_help=True, help="Grafana dashboards generated from code (grafana-foundation-sdk)."
)


@app.command("build")
def build(
    out: Path | None = typer.Option(None, "--out", help="Folder (default deploy/grafana/dashboards)."),
) -> None:
    """Write every board's JSON (what Grafana's file provisioning and `push` use)."""
    from dashboards.build import DASHBOARDS_DIR, write_dashboards

    for path in write_dashboards(out or DASHBOARDS_DIR):
        console.print(f"wrote {path}", highlight=False)


@app.command("push")
def push(
    ctx: typer.Context,
    url: str = typer.Option(..., "--url", help="Grafana base URL, e.g. http://127.0.0.1:3000."),
    token: str | None = typer.Option(None, "--token", envvar="GRAFANA_TOKEN", help="Service-account token."),
    prometheus_url: str | None = typer.Option(
        None, help="Prometheus URL as Grafana reaches it (default: the configured Prometheus)."
    ),
    as_json: bool = typer.Option(False, "--json", help="A list of {kind, uid, title, action}."),
) -> None:
    """Create or update the folder, the Prometheus datasource and every board (idempotent)."""
    from grafana_client import GrafanaApi

    from dashboards.push import push as push_all

    settings = settings_from(ctx)
    api = GrafanaApi.from_url(url, credential=token)
    changes = push_all(api, prometheus_url or settings.prometheus.effective_url)
    if as_json:
        emit_json([change.to_dict() for change in changes])
        return
    for change in changes:
        console.print(f"{change.action:9} {change.kind:10} {change.uid:22} {change.title}", highlight=False)


@app.command("render-channel")
def render_channel(
    ctx: typer.Context,
    channel: str = typer.Option(..., "--channel", help="Channel id, e.g. D-14."),
    spacecraft: str = typer.Option(..., "--spacecraft", help="SMAP or MSL."),
    minutes: float = typer.Option(15, "--minutes", help="How far back from now."),
    out: Path = typer.Option(..., "--out", help="PNG file to write."),
) -> None:
    """Draw the channel board's value/prediction and error/threshold panels from Prometheus."""
    from dashboards.prometheus_api import PrometheusApi
    from dashboards.render import render_channel as render

    settings = settings_from(ctx)
    end = time.time()
    samples = render(
        PrometheusApi(settings.prometheus.effective_url), spacecraft, channel, end - minutes * 60, end, out
    )
    console.print(f"wrote {out} ({samples} samples)", highlight=False)
