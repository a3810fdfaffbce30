"""The worker's Prometheus metrics (namespace ``tmstream_``; labels of low cardinality only).

``WorkerMetrics`` is also the core's ``MetricsPort``: the core says what happened, this counts it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from stream_workers.events import SEVERITIES, subsystem_of
from stream_workers.ports import Partition

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)
UNSCORED_REASONS = ("no_model", "model_mismatch", "model_error")


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
    snapshots_rejected: Counter
    dedup_entries: Gauge
    mode_switches: Counter

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
            snapshots_rejected=Counter(
                "tmstream_state_snapshots_rejected",
                "Channel snapshots that could not be restored (the channel is rebuilt from its topic)",
                ("reason",),
                registry=registry,
            ),
            dedup_entries=Gauge(
                "tmstream_emission_dedup_entries",
                "Anomalies the anomalies-topic sink remembers to drop re-derived emissions",
                ("state",),
                registry=registry,
            ),
            mode_switches=Counter(
                "tmstream_inference_mode_switches",
                "Stateful channels the online guard moved to windowed inference",
                ("reason",),
                registry=registry,
            ),
        )

    # The core's reports (stream_workers.ports.MetricsPort), counted in the series above.

    def channel_started(self, spacecraft: str, channel: str) -> None:
        for severity in SEVERITIES:  # series at 0 from the start, so increase() sees the first one
            self.anomalies.labels(spacecraft, channel, subsystem_of(channel), severity)

    def point_consumed(self, spacecraft: str, channel: str) -> None:
        self.points_consumed.labels(spacecraft, channel).inc()

    def point_redelivered(self, spacecraft: str, channel: str) -> None:
        self.redelivered.labels(spacecraft, channel).inc()

    def stream_reset(self, spacecraft: str, channel: str) -> None:
        self.stream_resets.labels(spacecraft, channel).inc()

    def batch_scored(self, seconds: float, windows: int) -> None:
        self.scoring_seconds.observe(seconds)
        self.batch_size.observe(windows)

    def scored(self, spacecraft: str, channel: str, count: int, latency_s: float) -> None:
        self.points_scored.labels(spacecraft, channel).inc(count)
        self.event_to_scored_seconds.observe(latency_s)

    def unscored(self, spacecraft: str, channel: str, reason: str, count: int) -> None:
        self.points_unscored.labels(spacecraft, channel, reason).inc(count)

    def channel_latest(self, spacecraft: str, channel: str, latest: Mapping[str, float]) -> None:
        for name, gauge in self._latest_gauges().items():
            gauge.labels(spacecraft, channel).set(latest[name])

    def anomaly_opened(self, spacecraft: str, channel: str, subsystem: str, severity: str) -> None:
        self.anomalies.labels(spacecraft, channel, subsystem, severity).inc()

    def alarm_cleared(self, spacecraft: str, channel: str) -> None:
        self.in_alarm.labels(spacecraft, channel).set(0)

    def alarm_restored(self, spacecraft: str, channel: str, in_alarm: bool) -> None:
        self.in_alarm.labels(spacecraft, channel).set(int(in_alarm))

    def inference_switched(self, spacecraft: str, channel: str, reason: str) -> None:
        self.mode_switches.labels(reason).inc()

    def dead_letter(self, reason: str) -> None:
        self.dead_letters.labels(reason).inc()

    def snapshot_written(self) -> None:
        self.snapshots.inc()

    def snapshot_rejected(self, reason: str) -> None:
        self.snapshots_rejected.labels(reason).inc()

    def assigned(self, partitions: int) -> None:
        self.assigned_partitions.set(partitions)

    def lag(self, partition: Partition, messages: int) -> None:
        self.consumer_lag.labels(partition.topic, str(partition.partition)).set(messages)

    def channel_forgotten(self, spacecraft: str, channel: str) -> None:
        """Drop every series of a channel this worker no longer owns, so only its owner exports it."""
        labels = (spacecraft, channel)
        families: list[Counter | Gauge] = [
            self.points_consumed, self.points_scored, self.redelivered, self.stream_resets,
            *self._latest_gauges().values(),
        ]  # fmt: skip
        series: list[tuple[Counter | Gauge, tuple[str, ...]]] = [(family, labels) for family in families]
        series += [(self.points_unscored, (*labels, reason)) for reason in UNSCORED_REASONS]
        series += [(self.anomalies, (*labels, subsystem_of(channel), s)) for s in SEVERITIES]
        for family, values in series:
            with contextlib.suppress(KeyError):  # a series never created
                family.remove(*values)

    def partition_forgotten(self, partition: Partition) -> None:
        with contextlib.suppress(KeyError):
            self.consumer_lag.remove(partition.topic, str(partition.partition))

    def _latest_gauges(self) -> dict[str, Gauge]:
        return {
            "value": self.last_value,
            "prediction": self.last_prediction,
            "error": self.prediction_error,
            "smoothed_error": self.smoothed_error,
            "threshold": self.threshold,
            "in_alarm": self.in_alarm,
        }
