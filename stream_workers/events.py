"""Anomaly events (``tmstream.anomaly.v1``): what alert consumers, Redis and work orders receive.

An event's ``event_id`` is deterministic — a hash of channel, start index, model version and (after
a source restarted its index) the stream epoch — so the same anomaly gets the same id after a
restart, a rebalance or a replay; ``emission_key`` adds the status and end index and names one
emission, which every sink writes at most once. A ``closed`` emission says why in ``close_reason``.

``AnomalyEvent.to_bytes`` is the one encoder of the event on the wire (the topic and Redis sinks
both send it) and ``from_bytes`` the decoder, strict so that whatever ``schemas/anomaly.v1.json``
rejects it rejects; the schema file is generated from the model (``write_schema_file``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, ValidationError
from pydantic_core import InitErrorDetails

from stream_workers.thresholding.streaming import CloseReason, Detection
from tmstream.ground.resources import packaged

ANOMALY_SCHEMA = "tmstream.anomaly.v1"
SCHEMA_FILE = packaged("schemas") / "anomaly.v1.json"

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


def event_id_for(channel: str, start_index: int, model_version: str, stream_epoch: int = 0) -> str:
    """Epoch 0 (a stream that never restarted its index) keeps the ids of earlier releases."""
    name = f"{channel}|{start_index}|{model_version}" + (f"|{stream_epoch}" if stream_epoch else "")
    return hashlib.sha256(name.encode()).hexdigest()[:24]


class AnomalyEvent(BaseModel):
    """One emission of an anomaly: ``open`` when found, ``updated`` as it grows, ``closed`` when final."""

    model_config = ConfigDict(
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        json_schema_extra=lambda schema: _publish_schema(schema),
    )

    schema_: Literal["tmstream.anomaly.v1"] = Field("tmstream.anomaly.v1", alias="schema")
    event_id: str
    channel: str
    spacecraft: str
    subsystem: str
    start_index: int = Field(ge=0)
    end_index: int = Field(ge=0)
    start_time_ms: int
    end_time_ms: int
    score: FiniteFloat
    severity: Severity
    threshold: FiniteFloat
    max_error: FiniteFloat
    direction: str
    model_version: str
    detected_at_ms: int
    status: Status
    close_reason: CloseReason | None = None
    stream_epoch: int = Field(0, ge=0)

    @property
    def emission_key(self) -> str:
        return f"{self.event_id}:{self.status}:{self.end_index}"

    def to_bytes(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()

    @classmethod
    def from_bytes(cls, payload: bytes) -> AnomalyEvent:
        """Parse strictly and by the wire names only; a record without ``schema`` is not an event.

        Every failure is a ``ValidationError``.
        """
        event = cls.model_validate_json(payload, strict=True, by_alias=True, by_name=False)
        if "schema_" not in event.model_fields_set:
            missing = InitErrorDetails(type="missing", loc=("schema",), input=payload)
            raise ValidationError.from_exception_data(cls.__name__, [missing])
        return event

    @classmethod
    def from_detection(
        cls,
        detection: Detection,
        spacecraft: str,
        start_time_ms: int,
        end_time_ms: int,
        detected_at_ms: int,
        stream_epoch: int = 0,
    ) -> AnomalyEvent:
        subsystem = subsystem_of(detection.channel)
        return cls(
            event_id=event_id_for(detection.channel, detection.start, detection.model_version, stream_epoch),
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
            close_reason=detection.close_reason,
            stream_epoch=stream_epoch,
        )


def anomaly_json_schema() -> dict[str, Any]:
    """The JSON Schema published at ``schemas/anomaly.v1.json``."""
    return AnomalyEvent.model_json_schema(by_alias=True)


def write_schema_file(path: Path = SCHEMA_FILE) -> None:
    """Regenerate the published schema file from the model."""
    path.write_text(json.dumps(anomaly_json_schema(), indent=2, sort_keys=True) + "\n")


def _publish_schema(schema: dict[str, Any]) -> None:
    """On the wire ``schema`` is required (the model defaults it only for convenience in Python)."""
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://tmstream.dev/schemas/anomaly.v1.json"
    schema["required"] = ["schema", *[name for name in schema["required"] if name != "schema"]]
