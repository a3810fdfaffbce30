"""The evaluated streams: the label file's rows, as Telemanom's 2018 run counted them.

The label file lists P-2 twice (two labellings of the same channel) and the 2018 run scored both
rows: 82 streams, 105 sequences. A channel without a label row (T-10) is evaluated only when named
explicitly, as a stream with no labelled sequence (every detection is a false positive).
"""

from __future__ import annotations

from dataclasses import dataclass

from producers.dataset import ChannelInfo, TelemanomDataset


@dataclass(frozen=True)
class LabelledStream:
    """One evaluated stream: its label-file row (1-based, as in the 2018 log; 0 if none) and labels."""

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
    selected = {info.channel: info for info in dataset.select(spacecraft, channels)}
    streams = [
        LabelledStream(number, info)
        for number, info in enumerate(dataset.label_rows, start=1)
        if info.channel in selected
    ]
    labelled = {info.channel for info in dataset.label_rows}
    streams += [LabelledStream(0, selected[channel]) for channel in channels or [] if channel not in labelled]
    return streams
