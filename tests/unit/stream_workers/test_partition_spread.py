"""The assignor's decision: every partition to one subscribed member, balanced, spread, sticky."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from stream_workers.partition_spread import Assignment, spread_partitions
from stream_workers.ports import Partition

# the default layout: a topic per channel, one partition each
CHANNEL_TOPICS = {f"telemetry.smap.C-{n}": 1 for n in range(82)}


def members(count: int) -> list[str]:
    return [f"worker-{n}" for n in range(1, count + 1)]


def spread(topics: dict[str, int], names: list[str], previous: Assignment | None = None) -> Assignment:
    return spread_partitions(topics, {name: set(topics) for name in names}, previous or {})


def sizes(assignment: Assignment) -> list[int]:
    return [len(assignment[name]) for name in sorted(assignment)]


def moved(before: Assignment, after: Assignment) -> int:
    owner = {tp: name for name, held in before.items() for tp in held}
    return sum(1 for name, held in after.items() for tp in held if tp in owner and owner[tp] != name)


def every_partition_once(topics: dict[str, int], assignment: Assignment) -> None:
    placed = Counter(tp for held in assignment.values() for tp in held)
    assert set(placed) == {Partition(t, p) for t, n in topics.items() for p in range(n)}
    assert set(placed.values()) == {1}


topic_layouts = st.dictionaries(
    st.sampled_from([f"telemetry.msl.{c}-{n}" for c in "ACDMPT" for n in range(1, 9)]),
    st.integers(min_value=1, max_value=6),
    min_size=1,
    max_size=30,
)


def test_one_partition_topics_are_shared_by_every_member() -> None:
    """The default layout: Faust's co-partitioning gave [82, 0]; the spread gives 82/N each."""
    assert sizes(spread(CHANNEL_TOPICS, members(1))) == [82]
    assert sizes(spread(CHANNEL_TOPICS, members(2))) == [41, 41]
    assert sorted(sizes(spread(CHANNEL_TOPICS, members(3)))) == [27, 27, 28]
    every_partition_once(CHANNEL_TOPICS, spread(CHANNEL_TOPICS, members(3)))


def test_a_join_moves_only_the_newcomers_share_and_a_leave_only_the_leavers() -> None:
    one = spread(CHANNEL_TOPICS, members(1))
    two = spread(CHANNEL_TOPICS, members(2), one)
    three = spread(CHANNEL_TOPICS, members(3), two)
    assert (moved(one, two), len(two["worker-2"])) == (41, 41)
    assert (moved(two, three), len(three["worker-3"])) == (27, 27)  # 1/3, nothing between the others
    assert all(two[name] >= three[name] for name in ("worker-1", "worker-2"))
    survivors = {name: held for name, held in three.items() if name != "worker-2"}
    after_leave = spread(CHANNEL_TOPICS, sorted(survivors), survivors)
    assert all(after_leave[name] >= held for name, held in survivors.items())  # they keep theirs
    assert sizes(after_leave) == [41, 41]


def test_the_partitions_of_six_partition_topics_spread_over_the_members_as_they_join_and_leave() -> None:
    """The production overlay: 82 topics of 6 partitions. Each topic's partitions reach every member
    of a 2-, 3- or 6-member group evenly (co-partitioning did too, by number), and stay within one
    per member as workers join one by one up to 7 and leave again."""
    topics = {topic: 6 for topic in CHANNEL_TOPICS}
    for count in (2, 3, 6):
        assignment = spread(topics, members(count))
        every_partition_once(topics, assignment)
        assert set(sizes(assignment)) == {82 * 6 // count}
        for topic in topics:
            assert {sum(tp.topic == topic for tp in held) for held in assignment.values()} == {6 // count}
    assignment = {}
    for count in (1, 2, 3, 4, 5, 6, 7, 3, 2):
        before = {name: held for name, held in assignment.items() if name in members(count)}
        assignment = spread(topics, members(count), before)
        assert max(sizes(assignment)) - min(sizes(assignment)) <= 1, count
        for topic in topics:
            per_member = [sum(tp.topic == topic for tp in held) for held in assignment.values()]
            assert max(per_member) - min(per_member) <= 1, (count, topic, per_member)


def test_a_partition_goes_only_to_members_subscribed_to_its_topic() -> None:
    """A new topic one worker discovered before the others: only that worker can consume it."""
    old = dict(CHANNEL_TOPICS)
    new_topic = "telemetry.smap.X-1"
    subscriptions = {"worker-1": set(old), "worker-2": {*old, new_topic}}
    assignment = spread_partitions({**old, new_topic: 1}, subscriptions, {})
    assert Partition(new_topic, 0) in assignment["worker-2"]
    every_partition_once({**old, new_topic: 1}, assignment)
    assert sizes(assignment) == [41, 42]


def test_a_partition_claimed_twice_stays_with_one_claimant() -> None:
    """An evicted member rejoining with its old assignment beside the partitions' new owner."""
    tp = Partition("telemetry.smap.C-0", 0)
    previous = {"worker-1": {tp}, "worker-2": {tp}}
    assignment = spread({"telemetry.smap.C-0": 1, "telemetry.smap.C-1": 1}, members(2), previous)
    assert tp in assignment["worker-1"] and tp not in assignment["worker-2"]


def test_partitions_gone_from_the_cluster_or_the_subscription_are_dropped() -> None:
    previous = {"worker-1": {Partition("telemetry.smap.gone", 0), Partition("telemetry.smap.C-0", 3)}}
    assignment = spread({"telemetry.smap.C-0": 1}, members(1), previous)
    assert assignment == {"worker-1": {Partition("telemetry.smap.C-0", 0)}}


def test_no_members_and_no_topics() -> None:
    assert spread_partitions(CHANNEL_TOPICS, {}, {}) == {}
    assert spread({}, members(2)) == {"worker-1": set(), "worker-2": set()}


@settings(max_examples=200, deadline=None)
@given(topic_layouts, st.integers(min_value=1, max_value=7), st.integers(min_value=1, max_value=7))
def test_any_layout_is_balanced_and_a_regroup_moves_only_what_the_balance_needs(
    topics: dict[str, int], before_count: int, after_count: int
) -> None:
    """Each member within one partition of the others, and on a first assignment each topic's
    partitions too; across a change of the group size a member
    present before and after gives up a partition only when its share shrinks, and then only the
    surplus: it keeps min(what it held, its new share)."""
    before = spread(topics, members(before_count))
    every_partition_once(topics, before)
    assert max(sizes(before)) - min(sizes(before)) <= 1
    for topic in topics:
        per_member = [sum(tp.topic == topic for tp in held) for held in before.values()]
        assert max(per_member) - min(per_member) <= 1, (topic, per_member)
    staying = {name: held for name, held in before.items() if name in members(after_count)}
    after = spread(topics, members(after_count), staying)
    every_partition_once(topics, after)
    assert max(sizes(after)) - min(sizes(after)) <= 1
    for name, held in staying.items():
        kept = len(held & after[name])
        assert kept == min(len(held), len(after[name])), (name, kept, len(held), len(after[name]))
