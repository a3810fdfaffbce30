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

from tmstream.ground.exceptions import DataError

Split = Literal["train", "test"]
WIDTH_TO_SPACECRAFT = {25: "SMAP", 55: "MSL"}
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
    def label_rows(self) -> list[ChannelInfo]:
        """The label file's rows in order: the streams Telemanom evaluated.

        The published file lists P-2 twice (with different ranges) and the 2018 run scored both
        rows, which is how it counts 82 streams, 105 sequences and 496,444 evaluated values.
        """
        rows: list[ChannelInfo] = []
        with (self.root / "labeled_anomalies.csv").open(newline="") as handle:
            for row in csv.DictReader(handle):
                channel = row["chan_id"]
                try:
                    ranges = ast.literal_eval(row["anomaly_sequences"])
                    classes = [c.strip() for c in row["class"].strip("[]").split(",")]
                    test_rows = int(row["num_values"])
                    sequences = tuple(
                        LabelledSequence(channel, int(start), int(end), cls)
                        for (start, end), cls in zip(ranges, classes, strict=True)
                    )
                except (ValueError, SyntaxError, TypeError) as exc:
                    raise DataError(f"labeled_anomalies.csv: bad row for channel {channel}: {exc}") from exc
                rows.append(ChannelInfo(channel, row["spacecraft"], test_rows, sequences))
        return rows

    @cached_property
    def channels(self) -> dict[str, ChannelInfo]:
        """Distinct channels: the first label row of each, then test files without labels.

        An unlabelled channel (T-10 in the NASA set) is still telemetry to replay and score; its
        spacecraft is inferred from the feature width (SMAP 25, MSL 55).
        """
        found: dict[str, ChannelInfo] = {}
        for info in self.label_rows:
            found.setdefault(info.channel, info)
        for path in sorted((self.root / "test").glob("*.npy")):
            if path.stem not in found:
                shape = np.load(path, mmap_mode="r").shape
                spacecraft = WIDTH_TO_SPACECRAFT.get(shape[1], "UNKNOWN") if len(shape) == 2 else "UNKNOWN"
                found[path.stem] = ChannelInfo(path.stem, spacecraft, shape[0], ())
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
                known = sorted({c.spacecraft for c in self.channels.values()})
                raise DataError(f"unknown spacecraft {spacecraft!r}; known: {', '.join(known)}")
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
