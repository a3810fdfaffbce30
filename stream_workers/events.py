"""Anomaly events (``tmstream.anomaly.v1``): what alert consumers, Redis and work orders receive.

An event's ``event_id`` is deterministic — a hash of channel, start index and model version — so
the same anomaly gets the same id after a restart, a rebalance or a replay; ``emission_key`` adds
the status and end index and names one emission, which every sink writes at most once.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from stream_workers.thresholding.streaming import Detection

ANOMALY_SCHEMA = "tmstream.anomaly.v1"

# Telemanom channel ids start with a letter naming the subsystem (SMAP/MSL telemetry dictionary).
SUBSYSTEMS = {
    "A": "attitude",
    "B": "battery",
    "C": "communication",
    "D": "data_handling",
    "E": "electrical",
    "F": "flight_software",
    "G": "guidance",
    "M": "mobility",
    "P": "power",
    "R": "radiation",
    "S": "sensor",
    "T": "thermal",
}
CRITICAL_SUBSYSTEMS = frozenset({"power", "thermal", "attitude", "battery"})
Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")
Status = Literal["open", "updated", "closed"]


def subsystem_of(channel: str) -> str:
    return SUBSYSTEMS.get(channel[:1].upper(), "other")


def severity_of(score: float, subsystem: str) -> Severity:
    """Telemanom scores are (peak error - threshold) / (mean + sd): ≥1 is a large excursion."""
    if score >= 1.0 or (subsystem in CRITICAL_SUBSYSTEMS and score >= 0.5):
        return "critical"
    return "warning" if score >= 0.2 else "info"


def event_id_for(channel: str, start_index: int, model_version: str) -> str:
    digest = hashlib.sha256(f"{channel}|{start_index}|{model_version}".encode()).hexdigest()
    return digest[:24]


class AnomalyEvent(BaseModel):
    """One emission of an anomaly: ``open`` when found, ``updated`` as it grows, ``closed`` when final."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)

    schema_: Literal["tmstream.anomaly.v1"] = Field("tmstream.anomaly.v1", alias="schema")
    event_id: str
    channel: str
    spacecraft: str
    subsystem: str
    start_index: int = Field(ge=0)
    end_index: int = Field(ge=0)
    start_time_ms: int
    end_time_ms: int
    score: float
    severity: Severity
    threshold: float
    max_error: float
    direction: str
    model_version: str
    detected_at_ms: int
    status: Status

    @property
    def emission_key(self) -> str:
        return f"{self.event_id}:{self.status}:{self.end_index}"

    def to_bytes(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()

    @classmethod
    def from_bytes(cls, payload: bytes) -> AnomalyEvent:
        return cls.model_validate_json(payload)

    @classmethod
    def from_detection(
        cls,
        detection: Detection,
        spacecraft: str,
        start_time_ms: int,
        end_time_ms: int,
        detected_at_ms: int,
    ) -> AnomalyEvent:
        subsystem = subsystem_of(detection.channel)
        return cls(
            event_id=event_id_for(detection.channel, detection.start, detection.model_version),
            channel=detection.channel,
            spacecraft=spacecraft,
            subsystem=subsystem,
            start_index=detection.start,
            end_index=detection.end,
            start_time_ms=start_time_ms,
            end_time_ms=end_time_ms,
            score=detection.score,
            severity=severity_of(detection.score, subsystem),
            threshold=detection.threshold,
            max_error=detection.max_error,
            direction=detection.direction,
            model_version=detection.model_version,
            detected_at_ms=detected_at_ms,
            status=detection.status,
        )


def anomaly_json_schema() -> dict[str, object]:
    schema = AnomalyEvent.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://tmstream.dev/schemas/anomaly.v1.json"
    return schema
