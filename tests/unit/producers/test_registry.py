"""The channel registry: discovery, overrides, topic naming, and writing entries back."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from producers.exceptions import RegistryError, UnknownChannelError
from producers.registry import ChannelRegistry, registry_path
from tmstream.ground.settings import load_settings


def write(path: Path, body: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(body))
    return path


def test_discovers_every_nasa_channel_with_default_topics(nasa_dir: Path, tmp_path: Path) -> None:
    registry = ChannelRegistry(tmp_path / "absent.yaml", nasa_dir)
    specs = {spec.channel: spec for spec in registry.channels()}
    assert len(specs) == 82
    assert registry.topic_for("P-1") == "telemetry.smap.P-1"
    assert registry.topic_for("M-6") == "telemetry.msl.M-6"
    assert specs["P-1"].features == 25 and specs["P-1"].spacecraft == "SMAP"
    assert specs["M-6"].features == 55 and specs["M-6"].spacecraft == "MSL"
    assert registry.feature_counts()["T-10"] == 55
    assert {spec.source for spec in specs.values()} == {"data"}


def test_the_repository_registry_file_is_valid(synth_dir: Path) -> None:
    registry = ChannelRegistry(registry_path(), synth_dir)
    assert registry.topic_for("P-1") == "telemetry.smap.P-1"


def test_overrides_and_registry_only_channels(synth_dir: Path, tmp_path: Path) -> None:
    path = write(
        tmp_path / "channels.yaml",
        {
            "channels": {
                "P-1": {"topic": "custom.p1"},
                "X-1": {"spacecraft": "lander", "features": 4},
            }
        },
    )
    registry = ChannelRegistry(path, synth_dir)
    assert registry.topic_for("P-1") == "custom.p1"
    assert registry.get("P-1").features == 25
    assert registry.get("P-1").source == "data+registry"
    assert registry.get("X-1").topic == "telemetry.lander.X-1"
    assert registry.get("X-1").spacecraft == "LANDER"
    assert registry.get("X-1").source == "registry"


def test_custom_topic_pattern(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.yaml",
        {
            "topic_pattern": "tm.{spacecraft}.{channel}",
            "discover": False,
            "channels": {"A-1": {"spacecraft": "SMAP", "features": 25}},
        },
    )
    assert ChannelRegistry(path, None).topic_for("A-1") == "tm.SMAP.A-1"


def test_add_writes_the_yaml_and_reload_sees_it(synth_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "channels.yaml"
    registry = ChannelRegistry(path, synth_dir)
    spec = registry.add("X-9", "SMAP", 25)
    assert spec.topic == "telemetry.smap.X-9"
    registry.add("P-1", "SMAP", 25, topic="other.P-1")
    reloaded = ChannelRegistry(path, synth_dir)
    assert reloaded.get("X-9").features == 25
    assert reloaded.topic_for("P-1") == "other.P-1"
    assert path.read_text().startswith("# Channel registry")
    assert yaml.safe_load(path.read_text())["channels"]["X-9"] == {"spacecraft": "SMAP", "features": 25}


@pytest.mark.parametrize(
    ("channel", "spacecraft", "features", "topic"),
    [
        ("X-1", "SMAP", 25, "bad topic"),
        ("X-1", "SMAP", 0, None),
        ("X-1", "S M", 25, None),
        ("bad/id", "SMAP", 25, None),
    ],
)
def test_add_rejects_invalid_entries(
    tmp_path: Path, channel: str, spacecraft: str, features: int, topic: str | None
) -> None:
    path = tmp_path / "channels.yaml"
    with pytest.raises(RegistryError):
        ChannelRegistry(path, None).add(channel, spacecraft, features, topic)
    assert not path.exists()


def test_registry_only_channel_needs_spacecraft_and_features(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", {"channels": {"X-1": {"topic": "a.b"}}})
    with pytest.raises(RegistryError, match="X-1"):
        ChannelRegistry(path, None)


def test_unknown_channel_lists_the_known_ones(synth_dir: Path, tmp_path: Path) -> None:
    registry = ChannelRegistry(tmp_path / "c.yaml", synth_dir)
    with pytest.raises(UnknownChannelError, match=r"unknown channel\(s\) NOPE-1; known: P-1, S-1"):
        registry.select(channels=["P-1", "NOPE-1"])
    with pytest.raises(UnknownChannelError):
        registry.topic_for("NOPE-1")
    assert [s.channel for s in registry.select("msl", ["P-1", "M-6"])] == ["M-6"]
    with pytest.raises(RegistryError, match="known: MSL, SMAP"):
        registry.select("voyager")


def test_worker_pattern_matches_channel_topics_but_not_deadletter(synth_dir: Path, tmp_path: Path) -> None:
    settings = load_settings()
    pattern = re.compile(settings.kafka.telemetry_topic_pattern)
    topics = [spec.topic for spec in ChannelRegistry(tmp_path / "c.yaml", synth_dir).channels()]
    assert all(pattern.fullmatch(topic) for topic in topics)
    for other in (settings.kafka.deadletter_topic, settings.kafka.anomalies_topic):
        assert not pattern.match(other), other
