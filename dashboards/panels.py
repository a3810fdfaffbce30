"""Panel helpers over grafana-foundation-sdk's builders: every query goes to one fixed datasource.

The datasource uid is fixed (``tmstream-prometheus``) so generated boards, the provisioning file
and ``tmstream dashboards push`` all name the same datasource on any Grafana.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import (
    bargauge,
    prometheus,
    stat,
    statushistory,
    table,
    timeseries,
)
from grafana_foundation_sdk.builders.dashboard import FieldColor, QueryVariable, ThresholdsConfig
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

DATASOURCE_UID = "tmstream-prometheus"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
RATE = "$__rate_interval"


def query(expr: str, legend: str = "", instant: bool = False) -> prometheus.Dataquery:
    built = prometheus.Dataquery().expr(expr).legend_format(legend or "__auto").datasource(DATASOURCE)
    return built.instant() if instant else built.range()


def _targets(panel: Builder[model.Panel], queries: list[prometheus.Dataquery]) -> Builder[model.Panel]:
    for ref, target in zip("ABCDEFGH", queries, strict=False):
        panel.with_target(target.ref_id(ref))  # type: ignore[attr-defined]
    return panel


def graph(title: str, unit: str, *queries: prometheus.Dataquery, width: int = 12) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).unit(unit).datasource(DATASOURCE).height(8).span(width)
    _targets(panel, list(queries))
    return panel


def single(title: str, unit: str, expr: str, width: int = 6, red_at: float | None = None) -> stat.Panel:
    panel = stat.Panel().title(title).unit(unit).datasource(DATASOURCE).height(5).span(width)
    if red_at is not None:
        steps = [model.Threshold(value=None, color="green"), model.Threshold(value=red_at, color="red")]
        panel.thresholds(ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(steps))
    _targets(panel, [query(expr, instant=True)])
    return panel


def bars(title: str, expr: str, legend: str, width: int = 12, unit: str = "short") -> bargauge.Panel:
    panel = bargauge.Panel().title(title).unit(unit).datasource(DATASOURCE).height(8).span(width)
    _targets(panel, [query(expr, legend, instant=True)])
    return panel


def heat_strip(title: str, expr: str, legend: str, width: int = 24) -> statushistory.Panel:
    """One coloured row per series over time: a heat map of channels (green → red as values rise)."""
    color = FieldColor().mode(model.FieldColorModeId.CONTINUOUS_GR_YL_RD)
    panel = (
        statushistory.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .height(12)
        .span(width)
        .color_scheme(color)
        .min(0)
        .max(2)
    )
    _targets(panel, [query(expr, legend)])
    return panel


def listing(title: str, expr: str, width: int = 24) -> table.Panel:
    panel = table.Panel().title(title).datasource(DATASOURCE).height(8).span(width)
    _targets(panel, [query(expr, instant=True).format(PromQueryFormat.TABLE)])
    return panel


def label_variable(name: str, metric: str, label: str, multi: bool = False) -> QueryVariable:
    """A variable listing the values of ``label`` on ``metric`` (Grafana's ``label_values``)."""
    variable = (
        QueryVariable(name)
        .label(name)
        .datasource(DATASOURCE)
        .query(f"label_values({metric}, {label})")
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
    )
    return variable.multi(True).include_all(True) if multi else variable
