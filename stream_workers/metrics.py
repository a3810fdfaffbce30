"""The worker's Prometheus metrics (namespace ``tmstream_``; labels of low cardinality only)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)


@dataclass(frozen=True)
class WorkerMetrics:
    points_consumed: Counter
    points_scored: Counter
    points_unscored: Counter
    redelivered: Counter
    stream_resets: Counter
    dead_letters: Counter
    anomalies: Counter
    events_emitted: Counter
    sink_retries: Counter
    last_value: Gauge
    last_prediction: Gauge
    prediction_error: Gauge
    smoothed_error: Gauge
    threshold: Gauge
    in_alarm: Gauge
    scoring_seconds: Histogram
    batch_size: Histogram
    event_to_scored_seconds: Histogram
    consumer_lag: Gauge
    assigned_partitions: Gauge
    worker_up: Gauge
    snapshots: Counter

    @classmethod
    def on(cls, registry: CollectorRegistry = REGISTRY) -> WorkerMetrics:
        ch = ("spacecraft", "channel")
        return cls(
            points_consumed=Counter(
                "tmstream_points_consumed", "Telemetry points consumed", ch, registry=registry
            ),
            points_scored=Counter(
                "tmstream_points_scored", "Points scored by a model", ch, registry=registry
            ),
            points_unscored=Counter(
                "tmstream_points_unscored",
                "Points consumed but not scored (no model, or the model failed to load)",
                (*ch, "reason"),
                registry=registry,
            ),
            redelivered=Counter(
                "tmstream_points_redelivered",
                "Points delivered again after a restart or rebalance and skipped",
                ch,
                registry=registry,
            ),
            stream_resets=Counter(
                "tmstream_stream_resets",
                "Channel histories restarted because indices jumped forward",
                ch,
                registry=registry,
            ),
            dead_letters=Counter(
                "tmstream_dead_letters",
                "Messages sent to the dead-letter topic",
                ("reason",),
                registry=registry,
            ),
            anomalies=Counter(
                "tmstream_anomalies",
                "Anomalies opened",
                ("spacecraft", "channel", "subsystem", "severity"),
                registry=registry,
            ),
            events_emitted=Counter(
                "tmstream_anomaly_events_emitted",
                "Anomaly event emissions written to a sink",
                ("sink", "status"),
                registry=registry,
            ),
            sink_retries=Counter(
                "tmstream_sink_retries", "Sink writes retried after a failure", ("sink",), registry=registry
            ),
            last_value=Gauge(
                "tmstream_last_value", "Telemetry value of the last scored point", ch, registry=registry
            ),
            last_prediction=Gauge(
                "tmstream_last_prediction",
                "Model prediction for the last scored point",
                ch,
                registry=registry,
            ),
            prediction_error=Gauge(
                "tmstream_prediction_error", "Last absolute prediction error", ch, registry=registry
            ),
            smoothed_error=Gauge(
                "tmstream_smoothed_error", "Last EWMA-smoothed prediction error", ch, registry=registry
            ),
            threshold=Gauge(
                "tmstream_threshold", "Last dynamic threshold (epsilon) of the channel", ch, registry=registry
            ),
            in_alarm=Gauge(
                "tmstream_channel_in_alarm", "1 while the channel has an open anomaly", ch, registry=registry
            ),
            scoring_seconds=Histogram(
                "tmstream_scoring_seconds",
                "Engine time for one micro-batch",
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            batch_size=Histogram(
                "tmstream_batch_windows",
                "Windows scored per micro-batch",
                buckets=BATCH_BUCKETS,
                registry=registry,
            ),
            event_to_scored_seconds=Histogram(
                "tmstream_event_to_scored_seconds",
                "From a point's event time to its score",
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            consumer_lag=Gauge(
                "tmstream_consumer_lag_messages",
                "Messages behind the end of each assigned partition",
                ("topic", "partition"),
                registry=registry,
            ),
            assigned_partitions=Gauge(
                "tmstream_assigned_partitions", "Partitions assigned to this worker", registry=registry
            ),
            worker_up=Gauge("tmstream_worker_up", "1 while the worker runs", registry=registry),
            snapshots=Counter(
                "tmstream_state_snapshots", "Channel state snapshots written", registry=registry
            ),
        )
