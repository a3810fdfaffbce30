"""``schemas/anomaly.v1.json`` against ``AnomalyEvent`` both ways: the committed file is the one the
model generates, every event the model (or the worker, through ``from_detection``) writes is valid
under it, and whatever it rejects ``AnomalyEvent.from_bytes`` rejects."""

from __future__ import annotations

import json
import math
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from stream_workers.events import SCHEMA_FILE, SEVERITIES, AnomalyEvent, anomaly_json_schema
from stream_workers.thresholding.streaming import Detection
from tests.unit.producers.json_strategies import FINITE, near_misses

VALIDATOR = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
STATUSES = st.sampled_from(["open", "updated", "closed"])
events = st.builds(
    AnomalyEvent,
    event_id=st.text(),
    channel=st.text(),
    spacecraft=st.text(),
    subsystem=st.text(),
    start_index=st.integers(min_value=0),
    end_index=st.integers(min_value=0),
    start_time_ms=st.integers(),
    end_time_ms=st.integers(),
    score=FINITE,
    severity=st.sampled_from(SEVERITIES),
    threshold=FINITE,
    max_error=FINITE,
    direction=st.text(),
    model_version=st.text(),
    detected_at_ms=st.integers(),
    status=STATUSES,
)
detections = st.builds(
    Detection,
    channel=st.text(min_size=1),
    model_version=st.text(),
    status=STATUSES,
    start=st.integers(0, 10**7),
    end=st.integers(0, 10**7),
    score=st.floats(0, 1e6),
    threshold=FINITE,
    max_error=FINITE,
    direction=st.sampled_from(["high", "low", "both"]),
)


def test_schema_file_equals_the_model() -> None:
    """Regenerate: python -c 'from stream_workers.events import write_schema_file; write_schema_file()'."""
    schema = json.loads(SCHEMA_FILE.read_text())
    VALIDATOR.check_schema(schema)
    assert schema == anomaly_json_schema()
    assert schema["required"][0] == "schema"


@given(events)
def test_every_event_the_model_writes_is_valid_and_reads_back(event: AnomalyEvent) -> None:
    wire = event.to_bytes()
    VALIDATOR.validate(json.loads(wire))
    assert AnomalyEvent.from_bytes(wire) == event


@given(detections, st.sampled_from(["SMAP", "MSL"]), st.integers(0, 2**41), st.integers(0, 2**41))
def test_every_event_the_worker_makes_is_valid(
    detection: Detection, spacecraft: str, start_ms: int, now_ms: int
) -> None:
    event = AnomalyEvent.from_detection(detection, spacecraft, start_ms, start_ms + 1000, now_ms)
    VALIDATOR.validate(json.loads(event.to_bytes()))


@given(near_misses(events.map(lambda e: json.loads(e.to_bytes())), traps=("schema_",)))
def test_what_the_schema_rejects_the_decoder_rejects(candidate: dict[str, Any]) -> None:
    """The contrapositive: whatever ``from_bytes`` accepts is valid under the schema."""
    try:
        AnomalyEvent.from_bytes(json.dumps(candidate).encode())
    except ValidationError:
        return
    VALIDATOR.validate(candidate)


def wire(**changes: object) -> dict[str, object]:
    body: dict[str, object] = json.loads(
        AnomalyEvent(
            event_id="e1", channel="P-1", spacecraft="SMAP", subsystem="power", start_index=10,
            end_index=20, start_time_ms=1, end_time_ms=2, score=0.5, severity="warning",
            threshold=0.1, max_error=0.7, direction="high", model_version="3", detected_at_ms=3,
            status="open",
        ).to_bytes()
    )  # fmt: skip
    body.update(changes)
    return body


@pytest.mark.parametrize(
    "body",
    [
        {k: v for k, v in wire().items() if k != "schema"},
        {**{k: v for k, v in wire().items() if k != "schema"}, "schema_": "tmstream.anomaly.v1"},
        wire(schema="tmstream.anomaly.v0"),
        wire(start_index="10"),
        wire(score=True),
        wire(score=None),
        wire(severity="fatal"),
        wire(extra=1),
    ],
)
def test_schema_and_decoder_reject_the_same_broken_events(body: dict[str, object]) -> None:
    assert not VALIDATOR.is_valid(body)
    with pytest.raises(ValidationError):
        AnomalyEvent.from_bytes(json.dumps(body).encode())


def test_an_event_cannot_carry_a_non_finite_number() -> None:
    """JSON has no NaN/inf (pydantic would write null, which no reader accepts)."""
    with pytest.raises(ValidationError):
        AnomalyEvent.model_validate({**wire(), "score": math.inf})
