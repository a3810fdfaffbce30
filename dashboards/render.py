"""A PNG of the channel board's two main panels, drawn with matplotlib from the same PromQL.

For docs and reports where no Grafana runs: the queries come from the generated board JSON,
so the picture shows what the Grafana panels would.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from dashboards.build import board_json, panel_queries, substitute
from dashboards.prometheus_api import PrometheusApi

PANELS = ("Value and prediction", "Smoothed error and threshold")


def render_channel(
    api: PrometheusApi, spacecraft: str, channel: str, start: float, end: float, out: Path, step: float = 1.0
) -> int:
    """Draw the channel view into ``out``; returns how many samples were plotted."""
    board = board_json("channel")
    values = {"spacecraft": spacecraft, "channel": channel, "__rate_interval": "15s"}
    queries = panel_queries(board)
    figure, axes = plt.subplots(len(PANELS), 1, figsize=(11, 6), sharex=True)
    samples = 0
    for axis, title in zip(axes, PANELS, strict=True):
        legends = {t["expr"]: t.get("legendFormat", "") for p in board["panels"] if p["title"] == title
                   for t in p["targets"]}  # fmt: skip
        for colour, panel_query in enumerate(q for q in queries if q.panel == title):
            # One colour and one legend entry per query, however many worker instances reported it.
            label: str | None = legends[panel_query.expr]
            for series in api.range(substitute(panel_query.expr, values), start, end, step):
                times = [datetime.fromtimestamp(float(t), UTC) for t, _ in series["values"]]
                axis.plot(times, [float(v) for _, v in series["values"]], color=f"C{colour}", label=label)
                samples += len(times)
                label = None
        alarm = substitute(next(q.expr for q in queries if q.panel.startswith("annotation")), values)
        for series in api.range(alarm, start, end, step):
            for t, _ in series["values"]:
                moment = datetime.fromtimestamp(float(t), UTC)
                axis.axvspan(moment, datetime.fromtimestamp(float(t) + step, UTC), color="red", alpha=0.15)
        axis.set_title(title, loc="left")
        axis.legend(loc="upper left")
    axes[0].figure.suptitle(f"{spacecraft} {channel} — tmstream channel board (red: anomaly annotation)")
    figure.autofmt_xdate()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(figure)
    return samples
