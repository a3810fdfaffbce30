"""The evaluated streams: one per row of ``labeled_anomalies.csv``, as Telemanom's run counted them.

The label file lists P-2 twice (two labellings of the same channel); the 2018 run scored both rows,
which is how the paper reaches 82 streams and 105 sequences. ``TelemanomDataset.channels`` keys by
channel and keeps one P-2 row, so the rows are read here.
"""

from __future__ import annotations

import ast
import csv
from dataclasses import dataclass

from producers.dataset import ChannelInfo, LabelledSequence, TelemanomDataset
from tmstream.exceptions import DataError


@dataclass(frozen=True)
class LabelledStream:
    """One label-file row: its position (1-based, as in the 2018 log) and the channel's labels."""

    row: int
    info: ChannelInfo

    @property
    def channel(self) -> str:
        return self.info.channel

    @property
    def spacecraft(self) -> str:
        return self.info.spacecraft


def labelled_streams(
    dataset: TelemanomDataset, spacecraft: str | None = None, channels: list[str] | None = None
) -> list[LabelledStream]:
    """Label-file rows in file order, filtered like ``TelemanomDataset.select``."""
    wanted = {info.channel for info in dataset.select(spacecraft, channels)}
    streams = []
    with (dataset.root / "labeled_anomalies.csv").open(newline="") as handle:
        for row_number, row in enumerate(csv.DictReader(handle), start=1):
            channel = row["chan_id"]
            if channel not in wanted:
                continue
            try:
                ranges = ast.literal_eval(row["anomaly_sequences"])
                classes = [c.strip() for c in row["class"].strip("[]").split(",")]
                sequences = tuple(
                    LabelledSequence(channel, int(start), int(end), anomaly_class)
                    for (start, end), anomaly_class in zip(ranges, classes, strict=True)
                )
                info = ChannelInfo(channel, row["spacecraft"], int(row["num_values"]), sequences)
            except (ValueError, SyntaxError) as exc:
                raise DataError(f"labeled_anomalies.csv: bad row for channel {channel}: {exc}") from exc
            streams.append(LabelledStream(row_number, info))
    return streams
