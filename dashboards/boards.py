"""The four tmstream boards. Every query uses metrics the worker, the cache, the producers or the
work-order service export today (names in stream_workers/metrics.py and friends)."""

from __future__ import annotations

from collections.abc import Callable

from grafana_foundation_sdk.builders.dashboard import AnnotationQuery, Dashboard, Row
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.models.dashboard import DashboardCursorSync

from dashboards.panels import (
    DATASOURCE,
    RATE,
    bars,
    graph,
    heat_strip,
    label_variable,
    listing,
    query,
    single,
)

FOLDER_UID = "tmstream"
FOLDER_TITLE = "tmstream"
CHANNEL = '{spacecraft="$spacecraft",channel="$channel"}'
# While the channel is in alarm, and for a minute after each anomaly opens. The second and third
# parts catch anomalies shorter than a scrape interval (common in fast replays): a new anomaly
# bumps the counter (`changes`), and the first one creates the series (present, absent 1 m ago).
ANOMALY_ANNOTATION = (
    f"max(tmstream_channel_in_alarm{CHANNEL}) == 1"
    f" or sum(changes(tmstream_anomalies_total{CHANNEL}[1m])) > 0"
    f" or sum(tmstream_anomalies_total{CHANNEL} unless tmstream_anomalies_total{CHANNEL} offset 1m) > 0"
)


def _board(uid: str, title: str, description: str) -> Dashboard:
    return (
        Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["tmstream"])
        .time("now-1h", "now")
        .refresh("10s")
        .timezone("utc")
        .tooltip(DashboardCursorSync.CROSSHAIR)
    )


def _quantiles(histogram: str) -> list[Dataquery]:
    return [
        query(f"histogram_quantile({q}, sum by (le) (rate({histogram}_bucket[{RATE}])))", f"p{int(q * 100)}")
        for q in (0.5, 0.99)
    ]


def pipeline_health() -> Dashboard:
    rate = f"[{RATE}]"
    return (
        _board("tmstream-pipeline", "tmstream — pipeline health", "Throughput, lag, latency and errors.")
        .with_row(Row("Throughput"))
        .with_panel(
            graph(
                "Points per second",
                "pps",
                query(f"sum(rate(tmstream_producer_points_sent_total{rate}))", "produced"),
                query(f"sum(rate(tmstream_points_consumed_total{rate}))", "consumed"),
                query(f"sum(rate(tmstream_points_scored_total{rate}))", "scored"),
            )
        )
        .with_panel(
            graph(
                "Consumer lag",
                "short",
                query("sum by (topic) (tmstream_consumer_lag_messages)", "{{topic}}"),
            )
        )
        .with_panel(single("Workers up", "short", 'sum(up{job="worker"}) or vector(0)', red_at=None))
        .with_panel(single("Assigned partitions", "short", "sum(tmstream_assigned_partitions)"))
        .with_panel(single("Models cached", "short", "sum(tmstream_model_cache_models)"))
        .with_panel(single("Dead letters (range)", "short", "sum(tmstream_dead_letters_total)", red_at=1))
        .with_row(Row("Latency and batches"))
        .with_panel(graph("Scoring time per micro-batch", "s", *_quantiles("tmstream_scoring_seconds")))
        .with_panel(graph("Event time to score", "s", *_quantiles("tmstream_event_to_scored_seconds")))
        .with_panel(
            graph(
                "Windows per micro-batch",
                "short",
                *_quantiles("tmstream_batch_windows"),
                query(
                    f"sum(rate(tmstream_batch_windows_sum{rate}))"
                    f" / sum(rate(tmstream_batch_windows_count{rate}))",
                    "mean",
                ),
            )
        )
        .with_panel(
            graph(
                "Dead letters by reason",
                "short",
                query(f"sum by (reason) (increase(tmstream_dead_letters_total{rate}))", "{{reason}}"),
            )
        )
        .with_row(Row("Models and sinks"))
        .with_panel(
            graph(
                "Model cache",
                "ops",
                query(f"sum(rate(tmstream_model_cache_hits_total{rate}))", "hits"),
                query(f"sum(rate(tmstream_model_cache_misses_total{rate}))", "misses"),
                query(f"sum(rate(tmstream_model_cache_loads_total{rate}))", "loads"),
                query(
                    f"sum(rate(tmstream_model_cache_load_failures_total{rate})) or vector(0)", "load failures"
                ),
            )
        )
        .with_panel(
            graph(
                "Anomaly emissions by sink",
                "short",
                query(
                    f"sum by (sink, status) (increase(tmstream_anomaly_events_emitted_total{rate}))",
                    "{{sink}} {{status}}",
                ),
            )
        )
    )


def fleet_overview() -> Dashboard:
    sc = 'spacecraft=~"$spacecraft"'
    side_by_side = [
        ("Channels in alarm", 'sum(tmstream_channel_in_alarm{spacecraft="$spacecraft"})', 1.0),
        ("Channels reporting", 'count(tmstream_points_consumed_total{spacecraft="$spacecraft"})', None),
        ("Points scored", 'sum(tmstream_points_scored_total{spacecraft="$spacecraft"})', None),
    ]
    board = _board("tmstream-fleet", "tmstream — fleet overview", "SMAP and MSL side by side.").with_variable(
        label_variable("spacecraft", "tmstream_points_consumed_total", "spacecraft", multi=True)
    )
    for title, expr, red_at in side_by_side:
        board.with_row(Row(title))
        board.with_panel(
            single(f"{title} — $spacecraft", "short", expr, width=12, red_at=red_at)
            .repeat("spacecraft")
            .repeat_direction("h")
        )
    return (
        board.with_row(Row("Anomalies"))
        .with_panel(
            bars(
                "Anomalies opened since worker start, by subsystem",
                f"sum by (subsystem) (tmstream_anomalies_total{{{sc}}})",
                "{{subsystem}}",
            )
        )
        .with_panel(
            graph(
                "Channels in alarm over time",
                "short",
                query(f"sum by (spacecraft) (tmstream_channel_in_alarm{{{sc}}})", "{{spacecraft}}"),
            )
        )
        .with_panel(
            heat_strip(
                "Anomaly score per channel (smoothed error / threshold; ≥ 1 is over threshold)",
                f"clamp_max(max by (channel) (tmstream_smoothed_error{{{sc}}}"
                f" / tmstream_threshold{{{sc}}}), 2)",
                "{{channel}}",
            )
        )
        .with_panel(
            listing(
                "Alarm state by channel",
                f"sort_desc(max by (spacecraft, channel) (tmstream_channel_in_alarm{{{sc}}}))",
            )
        )
    )


def channel_drilldown() -> Dashboard:
    alarm = (
        AnnotationQuery()
        .name("Anomaly")
        .datasource(DATASOURCE)
        .enable(True)
        .icon_color("red")
        .expr(ANOMALY_ANNOTATION)
    )
    return (
        _board("tmstream-channel", "tmstream — channel", "One channel: telemetry, model, errors, threshold.")
        .with_variable(label_variable("spacecraft", "tmstream_points_scored_total", "spacecraft"))
        .with_variable(
            label_variable("channel", 'tmstream_points_scored_total{spacecraft="$spacecraft"}', "channel")
        )
        .annotation(alarm)
        .with_panel(
            graph(
                "Value and prediction",
                "short",
                query(f"tmstream_last_value{CHANNEL}", "value"),
                query(f"tmstream_last_prediction{CHANNEL}", "prediction"),
                width=24,
            )
        )
        .with_panel(
            graph(
                "Smoothed error and threshold",
                "short",
                query(f"tmstream_smoothed_error{CHANNEL}", "smoothed error"),
                query(f"tmstream_threshold{CHANNEL}", "threshold"),
            )
        )
        .with_panel(
            graph("Prediction error", "short", query(f"tmstream_prediction_error{CHANNEL}", "|error|"))
        )
        .with_panel(single("In alarm", "short", f"max(tmstream_channel_in_alarm{CHANNEL})", red_at=1))
        .with_panel(
            single(
                "Anomalies opened since worker start",
                "short",
                'sum(tmstream_anomalies_total{spacecraft="$spacecraft",channel="$channel"})',
            )
        )
        .with_panel(
            single(
                "Points scored per second", "pps", f"sum(rate(tmstream_points_scored_total{CHANNEL}[{RATE}]))"
            )
        )
        .with_panel(single("Points scored", "short", f"sum(tmstream_points_scored_total{CHANNEL})"))
    )


def maintenance() -> Dashboard:
    range_ = "[$__range]"
    mean = "sum by (priority) (increase({m}_sum{r})) / sum by (priority) (increase({m}_count{r}))"
    board = _board("tmstream-maintenance", "tmstream — maintenance", "Work orders opened from anomalies.")
    for state in ("open", "acknowledged", "resolved"):
        board.with_panel(
            bars(
                f"{state.capitalize()} work orders by priority",
                f'sum by (priority) (tmstream_workorders{{state="{state}"}})',
                "{{priority}}",
                width=8,
            )
        )
    return (
        board.with_panel(single("Overdue", "short", "sum(tmstream_workorders_overdue)", width=8, red_at=1))
        .with_panel(
            graph(
                "Overdue by priority",
                "short",
                query("sum by (priority) (tmstream_workorders_overdue)", "{{priority}}"),
                width=16,
            )
        )
        .with_panel(
            graph(
                "Mean time to acknowledge (MTTA)",
                "s",
                query(
                    mean.format(m="tmstream_workorder_ack_seconds", r=range_), "{{priority}}", instant=True
                ),
            )
        )
        .with_panel(
            graph(
                "Mean time to resolve (MTTR)",
                "s",
                query(
                    mean.format(m="tmstream_workorder_resolve_seconds", r=range_),
                    "{{priority}}",
                    instant=True,
                ),
            )
        )
        .with_panel(
            listing(
                "Upcoming due dates (seconds left; negative is overdue)",
                "sort(tmstream_workorder_due_timestamp_seconds - time())",
            )
        )
    )


BOARDS: dict[str, Callable[[], Dashboard]] = {
    "pipeline-health": pipeline_health,
    "fleet-overview": fleet_overview,
    "channel": channel_drilldown,
    "maintenance": maintenance,
}
