"""The telemetry message contract: round trip, typed rejections, and the published JSON Schema,
checked against the model both ways (what the model writes the schema accepts; what the schema
rejects the decoder rejects). The bytes production sends: test_wire_contract.py."""

from __future__ import annotations

import json
import math
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from producers.dataset import TelemanomDataset
from producers.exceptions import MessageError
from producers.messages import (
    INT64_MAX,
    SCHEMA_FILE,
    TelemetryMessage,
    encode_points,
    message_prefix,
    telemetry_json_schema,
)
from tests.unit.producers.json_strategies import FINITE, near_misses

VALIDATOR = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
messages = st.builds(
    TelemetryMessage,
    channel=st.text(min_size=1),
    spacecraft=st.text(min_size=1),
    index=st.integers(0, INT64_MAX),
    event_time_ms=st.integers(-INT64_MAX - 1, INT64_MAX),
    values=st.lists(FINITE, min_size=1, max_size=60),
)


def message(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "schema": "tmstream.telemetry.v1",
        "channel": "P-1",
        "spacecraft": "SMAP",
        "index": 7,
        "event_time_ms": 1_700_000_000_000,
        "values": [0.25, 0.0, 1.0],
    }
    body.update(overrides)
    return body


@given(messages)
def test_round_trip(model: TelemetryMessage) -> None:
    wire = model.to_bytes()
    assert TelemetryMessage.from_bytes(wire) == model
    assert json.loads(wire) == model.model_dump(by_alias=True)


def test_wire_form_is_compact_json_with_schema_key() -> None:
    wire = TelemetryMessage.model_validate(message()).to_bytes()
    assert wire == (
        b'{"schema":"tmstream.telemetry.v1","channel":"P-1","spacecraft":"SMAP","index":7,'
        b'"event_time_ms":1700000000000,"values":[0.25,0.0,1.0]}'
    )


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{not json", "malformed_json"),
        (b"\xff\xfe\x00", "malformed_json"),
        (b"[1, 2]", "wrong_schema"),
        (json.dumps(message(schema="tmstream.telemetry.v0")).encode(), "wrong_schema"),
        (json.dumps({k: v for k, v in message().items() if k != "schema"}).encode(), "wrong_schema"),
        (json.dumps(message(values=[math.nan, 0.0])).encode(), "nan_or_inf"),
        (json.dumps(message(values=[0.0, math.inf])).encode(), "nan_or_inf"),
        (json.dumps(message()).replace("0.25", "1e999").encode(), "nan_or_inf"),
        (json.dumps(message(index=-1)).encode(), "invalid_fields"),
        (json.dumps(message(index="7")).encode(), "invalid_fields"),
        (json.dumps(message(index=True)).encode(), "invalid_fields"),
        (json.dumps(message(index=2**63)).encode(), "invalid_fields"),
        (json.dumps(message(event_time_ms=-(2**63) - 1)).encode(), "invalid_fields"),
        (json.dumps(message(event_time_ms="1700000000000")).encode(), "invalid_fields"),
        (json.dumps(message(values=[True, 0.0])).encode(), "invalid_fields"),
        (json.dumps(message(values=["0.25"])).encode(), "invalid_fields"),
        (json.dumps({**message(), "schema_": "tmstream.telemetry.v1"}).encode(), "invalid_fields"),
        (json.dumps(message(values=[])).encode(), "invalid_fields"),
        (json.dumps(message(values=["a"])).encode(), "invalid_fields"),
        (json.dumps(message(extra=1)).encode(), "invalid_fields"),
        (json.dumps({k: v for k, v in message().items() if k != "channel"}).encode(), "invalid_fields"),
    ],
)
def test_bad_messages_raise_typed_reasons(data: bytes, reason: str) -> None:
    with pytest.raises(MessageError) as caught:
        TelemetryMessage.from_bytes(data)
    assert caught.value.reason == reason


def test_wrong_width_is_checked_when_the_width_is_known() -> None:
    wire = TelemetryMessage.model_validate(message()).to_bytes()
    assert TelemetryMessage.from_bytes(wire, expected_width=3).index == 7
    with pytest.raises(MessageError) as caught:
        TelemetryMessage.from_bytes(wire, expected_width=25)
    assert caught.value.reason == "wrong_width"


def test_schema_file_equals_the_model() -> None:
    """Regenerate with: python -c 'from producers.messages import write_schema_file; write_schema_file()'."""
    assert json.loads(SCHEMA_FILE.read_text()) == telemetry_json_schema()


def test_schema_validates_real_messages_and_rejects_broken_ones(synth: TelemanomDataset) -> None:
    VALIDATOR.check_schema(VALIDATOR.schema)
    rows = synth.load("P-1")[:200].tolist()
    for wire in encode_points(message_prefix("P-1", "SMAP"), 0, 1_700_000_000_000, rows):
        VALIDATOR.validate(json.loads(wire))
    for broken in (
        message(index=-1),
        message(values=[]),
        message(schema="other"),
        {k: v for k, v in message().items() if k != "schema"},
        message(extra=True),
    ):
        assert not VALIDATOR.is_valid(broken), broken


@given(messages)
def test_every_message_the_model_writes_is_valid_under_the_schema(model: TelemetryMessage) -> None:
    VALIDATOR.validate(json.loads(model.to_bytes()))


@given(near_misses(messages.map(lambda m: json.loads(m.to_bytes())), traps=("schema_",)))
def test_what_the_schema_rejects_the_decoder_rejects(candidate: dict[str, Any]) -> None:
    """The contrapositive: whatever ``from_bytes`` accepts is valid under the schema."""
    try:
        TelemetryMessage.from_bytes(json.dumps(candidate).encode())
    except MessageError:
        return
    VALIDATOR.validate(candidate)
