"""Which group member consumes which telemetry partition: spread, balanced and sticky.

Faust's own assignor co-partitions: it hands out partition *numbers*, so on the default layout (a
topic per channel, one partition each) the first member gets every channel and the others none.
Here every partition is placed on its own, so N members share the channels, and each topic's
partitions (the production overlay has 6) are spread over the members too.

Moves are what a rebalance costs (a revoke snapshot, a restore and a catch-up per channel), so the
decision keeps every partition where it was as far as the balance allows: when a member joins only
about 1/N of the partitions move to it, and when one leaves only its own move.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping

from stream_workers.ports import Partition

Assignment = dict[str, set[Partition]]


def spread_partitions(
    partition_counts: Mapping[str, int],
    subscriptions: Mapping[str, Collection[str]],
    previous: Mapping[str, Collection[Partition]],
) -> Assignment:
    """Each member's partitions: every partition of a subscribed topic to exactly one member that
    subscribes to its topic.

    ``partition_counts``: partitions per topic (a topic the cluster does not know yet has 0);
    ``subscriptions``: member id → the topics it subscribes to; ``previous``: member id → the
    partitions it held before this rebalance (what it says in its join metadata).

    When all members subscribe to the same topics (the steady state) the members' partition counts
    differ by at most one, and the fewest partitions move that such a balance allows: the members
    holding the most keep the larger shares. A partition claimed by several members (one that was
    evicted and rejoins with its old assignment) stays with the first of them by member id. With
    different subscriptions (a new topic one member found before the others) the balance is the
    best the subscriptions allow; the members' next join, once they all see the topic, evens it.
    """
    members = sorted(subscriptions)
    assignment: Assignment = {member: set() for member in members}
    if not members:
        return assignment
    subscribed = {member: set(subscriptions[member]) for member in members}
    existing = {
        Partition(topic, number)
        for topic, count in partition_counts.items()
        if any(topic in topics for topics in subscribed.values())
        for number in range(count)
    }
    for member in members:  # sorted: a partition claimed twice stays with the first claimant
        for tp in previous.get(member, ()):
            if tp in existing and tp.topic in subscribed[member] and not _held(assignment, tp):
                assignment[member].add(tp)

    quotas = _quotas(len(existing), members, assignment)
    pool = existing - set().union(*assignment.values())
    for member in members:
        pool |= _release(assignment[member], quotas[member])
    per_topic = {member: Counter(tp.topic for tp in assignment[member]) for member in members}
    for tp in sorted(pool, key=lambda tp: (tp.topic, tp.partition)):
        eligible = [member for member in members if tp.topic in subscribed[member]]
        under_quota = [member for member in eligible if len(assignment[member]) < quotas[member]]
        # the member holding fewest of this topic first, so a topic's partitions spread; then the lighter
        receiver = min(
            under_quota or eligible,
            key=lambda member: (per_topic[member][tp.topic], len(assignment[member]), member),
        )
        assignment[receiver].add(tp)
        per_topic[receiver][tp.topic] += 1
    return assignment


def _held(assignment: Assignment, tp: Partition) -> bool:
    return any(tp in held for held in assignment.values())


def _quotas(total: int, members: list[str], kept: Assignment) -> dict[str, int]:
    """``total // N`` each, one more for the ``total % N`` members keeping the most (ties: member
    id), so the members with the larger shares already are the ones that keep them."""
    share, extra = divmod(total, len(members))
    by_kept = sorted(members, key=lambda member: (-len(kept[member]), member))
    return {member: share + (rank < extra) for rank, member in enumerate(by_kept)}


def _release(held: set[Partition], quota: int) -> set[Partition]:
    """Take a member's partitions beyond ``quota`` out of ``held``: those of the topics it holds
    most of, so the partitions it keeps stay spread over topics."""
    excess = len(held) - quota
    if excess <= 0:
        return set()
    per_topic = Counter(tp.topic for tp in held)
    order = sorted(held, key=lambda tp: (-per_topic[tp.topic], tp.topic, -tp.partition))
    released = set(order[:excess])
    held -= released
    return released
