"""The Telemanom data layout: ``train/<channel>.npy``, ``test/<channel>.npy``, ``labeled_anomalies.csv``.

Column 0 of each array is the telemetry value (scaled to [-1, 1]); the other columns are one-hot
command flags. Labelled anomaly ranges are inclusive row indices of the test split.
"""

from __future__ import annotations

import ast
import csv
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np

from tmstream.exceptions import DataError

Split = Literal["train", "test"]
Spacecraft = Literal["SMAP", "MSL"]


@dataclass(frozen=True)
class LabelledSequence:
    """One labelled anomaly: inclusive test-split row range and its class (point/contextual)."""

    channel: str
    start: int
    end: int
    anomaly_class: str


@dataclass(frozen=True)
class ChannelInfo:
    channel: str
    spacecraft: str
    test_rows: int
    sequences: tuple[LabelledSequence, ...]


class TelemanomDataset:
    """Read-only view of one data folder in the Telemanom layout."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        labels = self.root / "labeled_anomalies.csv"
        if not labels.is_file():
            raise DataError(
                f"data folder {self.root} has no labeled_anomalies.csv "
                "(set TMSTREAM_DATA_DIR, run `tmstream data fetch` or `tmstream data synth`)"
            )

    @cached_property
    def channels(self) -> dict[str, ChannelInfo]:
        """Channels in label-file order (the order Telemanom's run processed them)."""
        found: dict[str, ChannelInfo] = {}
        with (self.root / "labeled_anomalies.csv").open(newline="") as handle:
            for row in csv.DictReader(handle):
                channel = row["chan_id"]
                try:
                    ranges = ast.literal_eval(row["anomaly_sequences"])
                    classes = [c.strip() for c in row["class"].strip("[]").split(",")]
                    rows = int(row["num_values"])
                except (ValueError, SyntaxError) as exc:
                    raise DataError(f"labeled_anomalies.csv: bad row for channel {channel}: {exc}") from exc
                sequences = tuple(
                    LabelledSequence(channel, int(start), int(end), cls)
                    for (start, end), cls in zip(ranges, classes, strict=True)
                )
                found[channel] = ChannelInfo(channel, row["spacecraft"], rows, sequences)
        return found

    def select(self, spacecraft: str | None = None, channels: list[str] | None = None) -> list[ChannelInfo]:
        """Channels filtered by spacecraft and/or an explicit list (unknown names are an error)."""
        if channels:
            unknown = [c for c in channels if c not in self.channels]
            if unknown:
                raise DataError(f"unknown channel(s) {', '.join(unknown)}; known: {', '.join(self.channels)}")
            chosen = [self.channels[c] for c in channels]
        else:
            chosen = list(self.channels.values())
        if spacecraft:
            if spacecraft.upper() not in {c.spacecraft for c in self.channels.values()}:
                raise DataError(f"unknown spacecraft {spacecraft!r}; expected SMAP or MSL")
            chosen = [c for c in chosen if c.spacecraft == spacecraft.upper()]
        return chosen

    def load(self, channel: str, split: Split = "test") -> np.ndarray:
        """The (rows, features) float64 array of one channel's split."""
        path = self.root / split / f"{channel}.npy"
        if channel not in self.channels:
            raise DataError(f"unknown channel {channel!r}; known: {', '.join(self.channels)}")
        if not path.is_file():
            raise DataError(f"missing data file {path} for channel {channel}")
        array = np.load(path)
        if array.ndim != 2:
            raise DataError(f"{path}: expected a 2-D array, found shape {array.shape}")
        return array
