"""The telemetry message on the wire: one point of one channel, compact UTF-8 JSON.

``TelemetryMessage`` is the contract between producers and stream workers. Its bytes come from
one encoder, ``encode_points``: the replay and ``TelemetryPublisher`` call it on whole chunks (no
model per point, the hot path) and ``TelemetryMessage.to_bytes`` calls it on one point, so there is
no second formatter to drift. ``schemas/telemetry.v1.json`` is generated from the model, and
``from_bytes`` decodes strictly: whatever the schema rejects, it rejects.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from producers.exceptions import MessageError, MessageReason
from tmstream.ground.resources import packaged

SCHEMA_ID = "tmstream.telemetry.v1"
SCHEMA_FILE = packaged("schemas") / "telemetry.v1.json"
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
INT64_MAX = 2**63 - 1  # Kafka timestamps are int64, and orjson reads larger integers as floats


class TelemetryMessage(BaseModel):
    """One telemetry point: the value first, then the command one-hots, as in the Telemanom arrays."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        title="TelemetryMessage",
        json_schema_extra=lambda schema: _publish_schema(schema),
    )

    schema_: Literal["tmstream.telemetry.v1"] = Field(
        "tmstream.telemetry.v1", alias="schema", description="Message format identifier."
    )
    channel: str = Field(min_length=1, description="Channel id, also the Kafka key (e.g. P-1).")
    spacecraft: str = Field(min_length=1, description="Spacecraft of the channel (SMAP, MSL, ...).")
    index: int = Field(
        ge=0, le=INT64_MAX, description="Row index in the source series (test split rows for NASA)."
    )
    event_time_ms: int = Field(
        ge=-INT64_MAX - 1,
        le=INT64_MAX,
        description="Event time, epoch milliseconds (wall clock at send time).",
    )
    values: list[FiniteFloat] = Field(
        min_length=1, description="Telemetry value, then the command one-hot flags; finite floats."
    )

    def to_bytes(self) -> bytes:
        head = message_prefix(self.channel, self.spacecraft)
        return encode_points(head, self.index, self.event_time_ms, [self.values])[0]

    @classmethod
    def from_bytes(cls, data: bytes, expected_width: int | None = None) -> TelemetryMessage:
        """Parse and validate as the schema does (strict types, wire names only: no ``"5"`` for 5,
        no ``schema_``); every failure is a ``MessageError`` whose reason routes it."""
        payload = _decode_json(data)
        if not isinstance(payload, dict) or payload.get("schema") != SCHEMA_ID:
            found = payload.get("schema") if isinstance(payload, dict) else type(payload).__name__
            raise MessageError("wrong_schema", f"expected schema {SCHEMA_ID!r}, found {found!r}")
        try:
            message = cls.model_validate(payload, strict=True, by_alias=True, by_name=False)
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False)
            reason: MessageReason = (
                "nan_or_inf" if any(e["type"] == "finite_number" for e in errors) else "invalid_fields"
            )
            raise MessageError(reason, _first_error(errors)) from exc
        if expected_width is not None and len(message.values) != expected_width:
            raise MessageError(
                "wrong_width",
                f"{message.channel} index {message.index}: "
                f"{len(message.values)} values, expected {expected_width}",
            )
        return message


def telemetry_json_schema() -> dict[str, Any]:
    """The JSON Schema published at ``schemas/telemetry.v1.json``."""
    return TelemetryMessage.model_json_schema(by_alias=True)


def write_schema_file(path: Path = SCHEMA_FILE) -> None:
    """Regenerate the published schema file from the model."""
    path.write_text(json.dumps(telemetry_json_schema(), indent=2) + "\n")


def _publish_schema(schema: dict[str, Any]) -> None:
    """On the wire ``schema`` is required (the model defaults it only for convenience in Python)."""
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"urn:{SCHEMA_ID}"
    schema["required"] = ["schema", *[name for name in schema["required"] if name != "schema"]]


def encode_points(
    prefix: bytes, start_index: int, event_time_ms: int, rows: np.ndarray | Iterable[Sequence[float]]
) -> list[bytes]:
    """The message bytes of rows ``start_index, start_index+1, …`` of the channel whose
    ``message_prefix`` this is, all stamped ``event_time_ms``; the one telemetry encoder.

    No validation (the callers check widths and finiteness). A 2-D float64 array is formatted in
    one orjson call and split at the row boundaries (the values are numbers, so ``],[`` occurs only
    there): a row costs no Python floats, which ``tolist`` made the larger part of a chunk's
    encoding. orjson writes a float64 as it writes the equal Python float, so both forms give the
    same bytes.
    """
    tail = b',"event_time_ms":%d,"values":' % event_time_ms
    if isinstance(rows, np.ndarray):
        if rows.ndim == 2 and rows.dtype == np.float64 and rows.flags.c_contiguous and rows.size:
            cells = orjson.dumps(rows, option=orjson.OPT_SERIALIZE_NUMPY)[2:-2].split(b"],[")
            return [b"%s%d%s[%s]}" % (prefix, i, tail, cell) for i, cell in enumerate(cells, start_index)]
        rows = rows.tolist()
    dumps = orjson.dumps
    return [b"%s%d%s%s}" % (prefix, i, tail, dumps(values)) for i, values in enumerate(rows, start_index)]


def message_prefix(channel: str, spacecraft: str) -> bytes:
    """The constant head of every message of a channel, up to the index value."""
    head = orjson.dumps({"schema": SCHEMA_ID, "channel": channel, "spacecraft": spacecraft, "index": 0})
    return head[: -len(b"0}")]


# The worker keeps rows as float32 (the engine's input): from here on a value rounds to inf there
# (float32's max plus half its last step), so it is no more a reading than NaN is.
FLOAT32_LIMIT = (2 - 2**-24) * 2.0**127


def out_of_range_detail(values: Sequence[float]) -> str | None:
    """Why a finite row cannot be scored (the first value past float32), or None."""
    for position, value in enumerate(values):
        if abs(value) >= FLOAT32_LIMIT:
            return f"value {position} is {value!r}, beyond float32 (±{FLOAT32_LIMIT:.6g})"
    return None


def non_finite_detail(values: Sequence[float]) -> str | None:
    """Why a row may not be sent (the first NaN/inf), or None when every value is finite."""
    for position, value in enumerate(values):
        if not math.isfinite(value):
            return f"value {position} is {value}"
    return None


class _NonFiniteConstant(ValueError):
    pass


def _reject_constant(name: str) -> float:
    raise _NonFiniteConstant(name)


def _decode_json(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    # orjson refuses NaN/Infinity literals; the standard parser tells them apart from garbage.
    try:
        return json.loads(data, parse_constant=_reject_constant)
    except _NonFiniteConstant as exc:
        raise MessageError("nan_or_inf", f"JSON literal {exc} is not a finite number") from None
    except (ValueError, TypeError) as exc:
        raise MessageError("malformed_json", str(exc)) from None


def _first_error(errors: list[Any]) -> str:
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "message"
    return f"{where}: {first['msg']}" + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")
