"""One registered channel as the stream sees it: its id, spacecraft, feature width and topic.

Kept apart from the registry (files, settings) so the pure scoring core can hold it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class ChannelSpec:
    channel: str
    spacecraft: str
    features: int
    topic: str
    source: Literal["data", "registry", "data+registry"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "spacecraft": self.spacecraft,
            "features": self.features,
            "topic": self.topic,
            "source": self.source,
        }
