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

import heapq
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
    holding the most keep the larger shares. Each topic's partitions are spread within one per
    member too on a first assignment and as workers join one by one on the production layout (82
    topics of 6); a rebalance keeps partitions in place before it evens a topic, so after other
    sequences of joins and leaves a topic's partitions can be two or more apart per member (on a
    channel topic only one partition carries points, so this moves no load; a topic shared by many
    channels alone is spread within one, as the totals are).

    A partition claimed by several members (one that was evicted and rejoins with its old
    assignment) stays with the first of them by member id. With different subscriptions (a new
    topic one member found before the others) the balance is the best the subscriptions allow; the
    members' next join, once they all see the topic, evens it.
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

    share, extra = divmod(len(existing), len(members))
    # a larger share (share + 1) for members keeping more than ``share``, most first (ties: member
    # id): the fewest moves; the larger shares left over go to whoever the placement picks
    keeping_more = sorted(
        (m for m in members if len(assignment[m]) > share), key=lambda m: -len(assignment[m])
    )
    larger = set(keeping_more[:extra])
    floating = extra - len(larger)
    pool = existing - set().union(*assignment.values())
    pooled = Counter(tp.topic for tp in pool)
    for member in members:
        pool |= _release(assignment[member], share + (member in larger), pooled)
    per_topic = {member: Counter(tp.topic for tp in assignment[member]) for member in members}
    for tp in sorted(pool, key=lambda tp: (tp.topic, tp.partition)):
        eligible = [member for member in members if tp.topic in subscribed[member]]
        room = [
            member
            for member in eligible
            if len(assignment[member]) < share + (member in larger)
            or (floating > 0 and member not in larger and len(assignment[member]) == share)
        ]
        # the member holding fewest of this topic first, so a topic's partitions spread; then the lighter
        receiver = min(
            room or eligible,
            key=lambda member: (per_topic[member][tp.topic], len(assignment[member]), member),
        )
        if floating > 0 and receiver not in larger and len(assignment[receiver]) == share:
            larger.add(receiver)
            floating -= 1
        assignment[receiver].add(tp)
        per_topic[receiver][tp.topic] += 1
    return assignment


def _held(assignment: Assignment, tp: Partition) -> bool:
    return any(tp in held for held in assignment.values())


def _release(held: set[Partition], quota: int, pooled: Counter[str]) -> set[Partition]:
    """Take a member's partitions beyond ``quota`` out of ``held``, one at a time: from the topic it
    holds most of then, among those the topic least in the pool so far (``pooled``, counted on),
    so that both what it keeps and what the others receive stay spread over topics."""
    excess = len(held) - quota
    if excess <= 0:
        return set()
    by_topic: dict[str, list[int]] = {}
    for tp in sorted(held, key=lambda tp: (tp.topic, tp.partition)):
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    order = [(-len(numbers), pooled[topic], topic) for topic, numbers in by_topic.items()]
    heapq.heapify(order)
    released = set()
    for _ in range(excess):
        _, _, topic = heapq.heappop(order)
        released.add(Partition(topic, by_topic[topic].pop()))  # its highest-numbered one
        pooled[topic] += 1
        if by_topic[topic]:
            heapq.heappush(order, (-len(by_topic[topic]), pooled[topic], topic))
    held -= released
    return released
