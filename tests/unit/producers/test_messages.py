"""The telemetry message contract: round trip, typed rejections, and the published JSON Schema."""

from __future__ import annotations

import json
import math

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from producers.dataset import TelemanomDataset
from producers.exceptions import MessageError
from producers.messages import (
    SCHEMA_FILE,
    TelemetryMessage,
    encode_point,
    message_prefix,
    telemetry_json_schema,
)

finite = st.floats(allow_nan=False, allow_infinity=False)
channel_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,12}", fullmatch=True)


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


@given(
    channel=channel_ids,
    index=st.integers(min_value=0, max_value=2**53),
    event_time_ms=st.integers(min_value=0, max_value=2**62),
    values=st.lists(finite, min_size=1, max_size=60),
)
def test_round_trip_and_fast_path_agree(
    channel: str, index: int, event_time_ms: int, values: list[float]
) -> None:
    model = TelemetryMessage(
        channel=channel, spacecraft="SMAP", index=index, event_time_ms=event_time_ms, values=values
    )
    wire = model.to_bytes()
    assert encode_point(message_prefix(channel, "SMAP"), index, event_time_ms, values) == wire
    assert TelemetryMessage.from_bytes(wire) == model
    assert json.loads(wire)["schema"] == "tmstream.telemetry.v1"


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


def test_schema_validates_real_messages_and_rejects_broken_ones(nasa: TelemanomDataset) -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    validator.check_schema(schema)
    prefix = message_prefix("P-1", "SMAP")
    rows = nasa.load("P-1")[:200]
    for index, row in enumerate(rows.tolist()):
        validator.validate(json.loads(encode_point(prefix, index, 1_700_000_000_000, row)))
    for broken in (
        message(index=-1),
        message(values=[]),
        message(schema="other"),
        {k: v for k, v in message().items() if k != "schema"},
        message(extra=True),
    ):
        assert not validator.is_valid(broken), broken
