"""One registered channel as the stream sees it: id, spacecraft, feature width, topic, and how to
read its values (which column is the telemetry value, its units, raw or pre-scaled).

Kept apart from the registry (files, settings) so the pure scoring core can hold it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

ValueKind = Literal["raw", "prescaled"]


@dataclass(frozen=True)
class ChannelSpec:
    channel: str
    spacecraft: str
    features: int
    topic: str
    source: Literal["data", "registry", "data+registry", "catalog"]
    value_column: int = 0  # which of the `features` values is the telemetry value
    subsystem: str = ""
    units: str = ""
    # "prescaled": values arrive in the model's units (the NASA data, scaled to [-1, 1]);
    # "raw": engineering units, scaled by the model version's fitted input scaling
    values: ValueKind = "prescaled"

    def as_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "spacecraft": self.spacecraft,
            "features": self.features,
            "topic": self.topic,
            "source": self.source,
            "value_column": self.value_column,
            "subsystem": self.subsystem,
            "units": self.units,
            "values": self.values,
        }
