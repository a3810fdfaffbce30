"""Maintenance metrics, read from Redis at scrape time.

Orders change from several processes (the service applies events, operators act from the CLI or
the API), so counts, overdue orders and the MTTA/MTTR histograms are computed from the store on
every scrape instead of being counted in one process: they agree whoever made the change, and
survive restarts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import redis
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from workorders.model import PRIORITIES
from workorders.store import WorkOrderStore, now_ms

log = logging.getLogger(__name__)

EVENTS_APPLIED = Counter(
    "tmstream_workorder_events",
    "Anomaly events consumed by the work-order service, by outcome (opened, updated, duplicate, invalid)",
    ["outcome"],
)


class WorkOrderCollector(Collector):
    def __init__(self, store: WorkOrderStore, clock: Callable[[], int] = now_ms) -> None:
        self.store = store
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        store_up = GaugeMetricFamily("tmstream_workorders_store_up", "1 when Redis answered this scrape")
        try:
            families = list(self._families())
        except (redis.RedisError, OSError) as exc:
            log.warning("work-order metrics unavailable: %s", exc)
            store_up.add_metric([], 0)
            yield store_up
            return
        store_up.add_metric([], 1)
        yield store_up
        yield from families

    def _families(self) -> Iterator[Metric]:
        now = self.clock()
        by_state = GaugeMetricFamily(
            "tmstream_workorders", "Work orders by state and priority", labels=["state", "priority"]
        )
        for (state, priority), count in sorted(self.store.counts().items()):
            by_state.add_metric([state, priority], count)
        yield by_state
        overdue = GaugeMetricFamily(
            "tmstream_workorders_overdue", "Unresolved work orders past their due time", labels=["priority"]
        )
        due = GaugeMetricFamily(
            "tmstream_workorder_due_timestamp_seconds",
            "Due time of each unresolved work order (one series per order: at most one per channel)",
            labels=["id", "spacecraft", "channel", "priority", "state"],
        )
        late = dict.fromkeys(PRIORITIES, 0)
        for order in self.store.unresolved():
            late[order.priority] += order.overdue(now)
            labels = [order.id, order.spacecraft, order.channel, order.priority, order.state]
            due.add_metric(labels, order.due_ms / 1000)
        for priority, count in late.items():
            overdue.add_metric([priority], count)
        yield overdue
        yield due
        for kind, name, what in (
            ("ack", "tmstream_workorder_ack_seconds", "Time from opening to acknowledgement (MTTA)"),
            ("resolve", "tmstream_workorder_resolve_seconds", "Time from opening to resolution (MTTR)"),
        ):
            family = HistogramMetricFamily(name, what, labels=["priority"])
            for priority, histogram in self.store.histogram(kind).items():
                buckets = [(f"{le:g}", count) for le, count in histogram.buckets]
                family.add_metric([priority], [*buckets, ("+Inf", histogram.count)], histogram.total)
            yield family
