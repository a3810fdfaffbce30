"""The channel registry (``config/channels.yaml``): which channels exist, their topic and width.

Channels come from two places: every channel of the data folder (``discover: true``: spacecraft from
the label file, feature count from the array) and explicit ``channels:`` entries, which add new
channels or override a discovered channel's topic, features or spacecraft. Topics default to
``topic_pattern`` (``telemetry.{spacecraft_lower}.{channel}``): three dot-separated parts, so the
workers' subscription regex can tell them from the two-part ``telemetry.deadletter``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from producers.channel_spec import ChannelSpec
from producers.dataset import TelemanomDataset
from producers.exceptions import RegistryError, UnknownChannelError
from tmstream.ground.exceptions import DataError
from tmstream.ground.settings import Settings, config_dir

# libyaml's safe loader where PyYAML was built with it: the pure-Python one takes seconds on a
# registry of 10,000 channels
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
DEFAULT_TOPIC_PATTERN = "telemetry.{spacecraft_lower}.{channel}"
CHANNEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
SPACECRAFT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
HEADER = """\
# Channel registry: the telemetry channels tmstream replays and scores (see docs/PRODUCERS.md).
# topic_pattern placeholders: {channel}, {spacecraft}, {spacecraft_lower}. Keep three dot-separated
# parts (telemetry.<spacecraft>.<channel>) so kafka.telemetry_topic_pattern never matches
# the two-part dead-letter topic telemetry.deadletter.
# discover: true adds every channel of the data folder (spacecraft from the labels, width from the file).
# channels: entries add channels or override a discovered one: {spacecraft, features, topic}.
# `tmstream channels add` rewrites this file.
"""


def registry_path() -> Path:
    return config_dir() / "channels.yaml"


def valid_topic(name: str) -> bool:
    return bool(TOPIC_NAME.match(name)) and name not in {".", ".."}


class ChannelEntry(BaseModel):
    """One explicit entry; unset fields fall back to what discovery found."""

    model_config = ConfigDict(extra="forbid")

    spacecraft: str | None = None
    features: int | None = Field(None, ge=1)
    topic: str | None = None

    @field_validator("spacecraft")
    @classmethod
    def _spacecraft(cls, value: str | None) -> str | None:
        if value is not None and not SPACECRAFT_NAME.match(value):
            raise ValueError(f"spacecraft {value!r} must match {SPACECRAFT_NAME.pattern}")
        return value.upper() if value else value

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: str | None) -> str | None:
        if value is not None and not valid_topic(value):
            raise ValueError(f"topic {value!r} is not a valid Kafka topic name ([A-Za-z0-9._-], ≤249)")
        return value


class RegistryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    topic_pattern: str = DEFAULT_TOPIC_PATTERN
    discover: bool = True
    channels: dict[str, ChannelEntry] = {}

    @field_validator("channels")
    @classmethod
    def _channel_ids(cls, value: dict[str, ChannelEntry]) -> dict[str, ChannelEntry]:
        bad = [name for name in value if not CHANNEL_ID.match(name)]
        if bad:
            raise ValueError(f"channel id(s) {', '.join(bad)} must match {CHANNEL_ID.pattern}")
        return value


class ChannelRegistry:
    """Resolved channels: discovered ones (in label-file order), then registry-only ones."""

    def __init__(self, path: Path, data_dir: Path | None) -> None:
        self.path = Path(path)
        self.data_dir = data_dir
        self.file = self._read(self.path)
        self.discovery_note: str | None = None
        self._specs = self._resolve()

    @classmethod
    def load(cls, data_dir: Path | None, path: Path | None = None) -> ChannelRegistry:
        return cls(path or registry_path(), data_dir)

    def channels(self) -> list[ChannelSpec]:
        return list(self._specs.values())

    def names(self) -> list[str]:
        return list(self._specs)

    def get(self, channel: str) -> ChannelSpec:
        try:
            return self._specs[channel]
        except KeyError:
            raise UnknownChannelError([channel], self.names()) from None

    def topic_for(self, channel: str) -> str:
        return self.get(channel).topic

    def feature_counts(self) -> dict[str, int]:
        return {spec.channel: spec.features for spec in self._specs.values()}

    def select(self, spacecraft: str | None = None, channels: list[str] | None = None) -> list[ChannelSpec]:
        """Channels by explicit list and/or spacecraft; unknown names list the known ones."""
        if channels:
            unknown = [name for name in channels if name not in self._specs]
            if unknown:
                raise UnknownChannelError(unknown, self.names())
            chosen = [self._specs[name] for name in dict.fromkeys(channels)]
        else:
            chosen = self.channels()
        if spacecraft:
            known = sorted({spec.spacecraft for spec in self._specs.values()})
            if spacecraft.upper() not in known:
                raise RegistryError(f"unknown spacecraft {spacecraft!r}; known: {', '.join(known)}")
            chosen = [spec for spec in chosen if spec.spacecraft == spacecraft.upper()]
        return chosen

    def add(self, channel: str, spacecraft: str, features: int, topic: str | None = None) -> ChannelSpec:
        """Add or replace an explicit entry and rewrite the YAML file atomically."""
        entries = dict(self.file.channels)
        try:
            entries[channel] = ChannelEntry(spacecraft=spacecraft, features=features, topic=topic)
            updated = RegistryFile(
                topic_pattern=self.file.topic_pattern, discover=self.file.discover, channels=entries
            )
        except ValidationError as exc:
            raise RegistryError(_describe(exc)) from exc
        self._write(updated)
        self.file = updated
        self._specs = self._resolve()
        return self._specs[channel]

    def default_topic(self, channel: str, spacecraft: str) -> str:
        try:
            topic = self.file.topic_pattern.format(
                channel=channel, spacecraft=spacecraft, spacecraft_lower=spacecraft.lower()
            )
        except (KeyError, IndexError, ValueError) as exc:
            raise RegistryError(f"{self.path}: bad topic_pattern {self.file.topic_pattern!r}: {exc}") from exc
        if not valid_topic(topic):
            raise RegistryError(f"{self.path}: topic_pattern gives the invalid topic name {topic!r}")
        return topic

    def _discovered(self) -> dict[str, tuple[str, int]]:
        if not self.file.discover or self.data_dir is None:
            return {}
        try:
            dataset = TelemanomDataset(self.data_dir)
            infos = dataset.channels
        except DataError as exc:
            self.discovery_note = f"no channels discovered: {exc}"
            return {}
        found = {}
        for name, info in infos.items():
            shape = np.load(dataset.root / "test" / f"{name}.npy", mmap_mode="r").shape
            found[name] = (info.spacecraft, int(shape[1]) if len(shape) == 2 else 1)
        return found

    def _resolve(self) -> dict[str, ChannelSpec]:
        discovered = self._discovered()
        specs: dict[str, ChannelSpec] = {}
        for name in [*discovered, *(n for n in self.file.channels if n not in discovered)]:
            entry = self.file.channels.get(name)
            found = discovered.get(name)
            spacecraft = (entry and entry.spacecraft) or (found and found[0])
            features = (entry and entry.features) or (found and found[1])
            if not spacecraft or not features:
                raise RegistryError(
                    f"{self.path}: channel {name} is not in the data folder, so it needs both "
                    "spacecraft and features"
                )
            topic = (entry and entry.topic) or self.default_topic(name, spacecraft)
            source: Literal["data", "registry", "data+registry"] = (
                "data+registry" if entry and found else "data" if found else "registry"
            )
            specs[name] = ChannelSpec(name, spacecraft, features, topic, source)
        return specs

    @staticmethod
    def _read(path: Path) -> RegistryFile:
        if not path.is_file():
            return RegistryFile()
        try:
            loaded = yaml.load(path.read_text(), Loader=SAFE_LOADER) or {}
            return RegistryFile.model_validate(loaded)
        except yaml.YAMLError as exc:
            raise RegistryError(f"{path} is not valid YAML: {exc}") from exc
        except ValidationError as exc:
            raise RegistryError(f"{path}: {_describe(exc)}") from exc

    def _write(self, content: RegistryFile) -> None:
        body = {
            "topic_pattern": content.topic_pattern,
            "discover": content.discover,
            "channels": {
                name: entry.model_dump(exclude_none=True) for name, entry in sorted(content.channels.items())
            },
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staging = self.path.with_suffix(".yaml.tmp")
        staging.write_text(HEADER + yaml.safe_dump(body, sort_keys=False, default_flow_style=False))
        os.replace(staging, self.path)


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else first["msg"]


def required_topics(settings: Settings, registry: ChannelRegistry) -> list[str]:
    """Every topic tmstream needs: one per registered channel, anomalies, dead letters."""
    names = [spec.topic for spec in registry.channels()]
    return list(dict.fromkeys([*names, settings.kafka.anomalies_topic, settings.kafka.deadletter_topic]))


class ChannelLookup:
    """Channel specs by id for a long-running worker: the registry file is re-read when it changed,
    so a channel added with ``tmstream channels add`` is scored without a restart."""

    def __init__(self, data_dir: Path | None) -> None:
        self.data_dir = data_dir
        self.registry = ChannelRegistry.load(data_dir)
        self.specs = {spec.channel: spec for spec in self.registry.channels()}
        self.mtime = self._mtime()

    def _mtime(self) -> float:
        path = self.registry.path
        return path.stat().st_mtime if path.exists() else 0.0

    def __call__(self, channel: str) -> ChannelSpec | None:
        spec = self.specs.get(channel)
        if spec is None and (mtime := self._mtime()) != self.mtime:
            self.mtime = mtime
            self.registry = ChannelRegistry.load(self.data_dir)
            self.specs = {spec.channel: spec for spec in self.registry.channels()}
            spec = self.specs.get(channel)
        return spec
