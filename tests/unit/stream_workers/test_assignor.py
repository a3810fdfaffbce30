"""The Faust adapter of the spread: what the group leader sends each member, as Faust reads it."""

from __future__ import annotations

from pathlib import Path

import faust
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment, ConsumerProtocolMemberMetadata
from faust.types import TP

from stream_workers.assignor import SpreadingAssignor
from stream_workers.faust_config import faust_options
from tmstream.ground.settings import load_settings

TOPICS = [f"telemetry.smap.C-{n}" for n in range(82)]


class Cluster:
    """The one question the assignor asks of aiokafka's ``ClusterMetadata``."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return set(range(self.partitions)) if topic in TOPICS else None


def worker_app(tmp_path: Path, port: int) -> faust.App:
    settings = load_settings({"worker": {"metrics_port": port}})
    return faust.App("tmstream-worker", **faust_options(settings, tmp_path / str(port)))


def rebalance(apps: dict[str, faust.App], partitions: int) -> dict[str, set[TP]]:
    """One join: every member's metadata, the leader's assignment, each member's ``on_assignment``
    (which asserts that the Kafka assignment and Faust's client assignment agree)."""
    metadata = {member: app.assignor.metadata(set(TOPICS)) for member, app in apps.items()}
    decoded = {
        member: ConsumerProtocolMemberMetadata.decode(meta.encode()) for member, meta in metadata.items()
    }
    leader = apps[min(apps)].assignor
    sent = leader.assign(Cluster(partitions), decoded)
    for member, app in apps.items():
        app.assignor.on_assignment(ConsumerProtocolMemberAssignment.decode(sent[member].encode()))
    return {member: app.assignor.assigned_actives() for member, app in apps.items()}


def test_the_worker_app_uses_the_spreading_assignor(tmp_path: Path) -> None:
    app = worker_app(tmp_path, 16066)
    assert isinstance(app.assignor, SpreadingAssignor)
    assert app.conf.table_standby_replicas > 0  # else the aiokafka driver bypasses it


def test_workers_share_one_partition_topics_and_a_join_moves_a_third(tmp_path: Path) -> None:
    apps = {"m1": worker_app(tmp_path, 16066), "m2": worker_app(tmp_path, 16067)}
    two = rebalance(apps, 1)
    assert sorted(len(held) for held in two.values()) == [41, 41]
    assert set().union(*two.values()) == {TP(topic, 0) for topic in TOPICS}
    apps["m3"] = worker_app(tmp_path, 16068)
    three = rebalance(apps, 1)
    assert sorted(len(held) for held in three.values()) == [27, 27, 28]
    assert three["m1"] <= two["m1"] and three["m2"] <= two["m2"]  # only the newcomer's share moved
    assert all(app.assignor.is_active(tp) for member, app in apps.items() for tp in three[member])


def test_six_partition_topics_spread_within_each_topic(tmp_path: Path) -> None:
    apps = {f"m{n}": worker_app(tmp_path, 16066 + n) for n in range(3)}
    held = rebalance(apps, 6)
    assert [len(tps) for tps in held.values()] == [164, 164, 164]
    for tps in held.values():
        assert {sum(tp.topic == topic for tp in tps) for topic in TOPICS} == {2}
