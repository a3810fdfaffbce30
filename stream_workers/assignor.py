"""The worker's Faust partition assignor: Faust's, with its co-partitioning replaced by a spread.

Faust co-partitions topics of equal partition count (partition *number* p of every topic to one
member): on the default layout of one single-partition topic per channel a second worker got
nothing. ``SpreadingAssignor`` keeps Faust's protocol — the ``ClientMetadata`` each member sends and
receives (its assignment, URL, changelog and external-topic distributions, topic groups), which
Faust's consumer and ``on_assignment`` check — and decides the actives with
``partition_spread.spread_partitions``, sticky through the assignment each member reports in its
join metadata. It keeps Faust's protocol name and encoding, so a rolling upgrade can mix it with
Faust's assignor (whichever member leads the group decides).

The worker declares no tables: a table's changelog must be co-partitioned with its source, which
a spread does not give, so an app with tables is refused. Faust's aiokafka driver consults the
app's assignor only while ``table_standby_replicas`` > 0 (its default, 1) or tables exist; with 0 it
would use aiokafka's round robin instead, which spreads too, but not sticky.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

from faust.assignor import PartitionAssignor
from faust.assignor.client_assignment import ClientAssignment

from stream_workers.partition_spread import spread_partitions
from stream_workers.ports import Partition

log = logging.getLogger(__name__)


class SpreadingAssignor(PartitionAssignor):
    """Faust's assignor, every partition placed on its own: balanced, each topic spread, sticky."""

    def _perform_assignment(self, cluster: Any, member_metadata: MutableMapping[str, Any]) -> Any:
        """The group leader's decision (Faust's private hook under ``assign``: its sensors and
        tracing stay; re-check the hook on each Faust upgrade)."""
        if self._table_manager.changelog_topics:
            raise RuntimeError("SpreadingAssignor does not co-partition: an app with tables needs Faust's")
        clients = {member: self._get_client_metadata(meta) for member, meta in member_metadata.items()}
        self._update_member_urls(clients)
        subscriptions = {member: set(meta.subscription) for member, meta in member_metadata.items()}
        topics = sorted(set().union(*subscriptions.values()))
        counts = {topic: len(cluster.partitions_for_topic(topic) or ()) for topic in topics}
        previous = {member: _partitions(client.assignment.actives) for member, client in clients.items()}
        spread = spread_partitions(counts, subscriptions, previous)
        moved = sum(1 for member, held in spread.items() for tp in held - previous[member]
                    if any(tp in other for other in previous.values()))  # fmt: skip
        log.info("spread %d partitions over %d members %s; %d moved from another member",
                 sum(counts.values()), len(spread), sorted(len(held) for held in spread.values()),
                 moved)  # fmt: skip
        assignments = {
            member: ClientAssignment(actives=_by_topic(held), standbys={}) for member, held in spread.items()
        }
        return self._protocol_assignments(
            assignments,
            self._get_changelog_distribution(assignments),
            self._get_external_topic_distribution(assignments),
            {topic: group for group, topic in enumerate(topics)},  # no two topics co-partitioned
        )


def _partitions(actives: Mapping[str, Iterable[int]]) -> set[Partition]:
    return {Partition(topic, number) for topic, numbers in actives.items() for number in numbers}


def _by_topic(held: Iterable[Partition]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for tp in sorted(held, key=lambda tp: (tp.topic, tp.partition)):
        found.setdefault(tp.topic, []).append(tp.partition)
    return found
