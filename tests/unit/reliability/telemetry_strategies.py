"""Hypothesis strategies for bad telemetry records, each with the dead-letter reason it must get.

A ``Defect`` is rendered against the channel's next good index (duplicate and out-of-order
indices are relative to it). Each defect breaks exactly one rule, so its reason is unambiguous;
the rules follow the message contract (``schemas/telemetry.v1.json``) and the worker's checks in
the order they run: JSON, schema, fields, key, channel, width, finite values, float32 range, index.

Pydantic's lax mode accepts ``"5"`` and ``true`` as the integer 5 and 1, and ``"nan"`` as a float,
so wrong types are drawn from values no mode accepts (letters, lists, objects, fractions, ``null``).
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

SCHEMA = "tmstream.telemetry.v1"
REQUIRED = ("channel", "spacecraft", "index", "event_time_ms", "values")
LETTERS = st.text(string.ascii_letters, min_size=1, max_size=12).filter(
    lambda text: text.lower() not in {"nan", "inf", "infinity"}  # lax floats: "nan" is NaN, a second defect
)
NOT_AN_INDEX = st.one_of(
    LETTERS, st.none(), st.lists(st.integers(), max_size=3), st.integers(max_value=-1),
    st.integers(0, 10**6).map(lambda n: n + 0.5), st.dictionaries(LETTERS, st.integers(), max_size=2),
)  # fmt: skip
NOT_VALUES = st.one_of(
    st.just([]), LETTERS, st.none(), st.integers(), st.lists(LETTERS, min_size=1, max_size=3),
    st.dictionaries(LETTERS, st.floats(allow_nan=False, allow_infinity=False), max_size=2),
)  # fmt: skip
NOT_TEXT = st.one_of(st.just(""), st.none(), st.integers(), st.lists(LETTERS, max_size=2))


@dataclass(frozen=True)
class Channel:
    name: str
    spacecraft: str
    width: int

    def message(self, at: int, **changes: Any) -> dict[str, Any]:
        """The good message of row ``at``, with ``changes`` (any field, even ``index``) applied."""
        body: dict[str, Any] = {
            "schema": SCHEMA,
            "channel": self.name,
            "spacecraft": self.spacecraft,
            "index": at,
            "event_time_ms": 1_700_000_000_000 + at,
            "values": [0.0] * self.width,
        }
        body.update(changes)
        return body


@dataclass(frozen=True)
class Record:
    key: bytes | None
    value: bytes
    reason: str | None  # None: a good point, to be scored


@dataclass(frozen=True)
class Defect:
    """One bad record; ``needs`` good points before it (a duplicate needs something to repeat)."""

    reason: str
    render: Callable[[int], tuple[bytes | None, bytes]]
    needs: int = 0

    def record(self, next_index: int) -> Record:
        key, value = self.render(next_index)
        return Record(key, value, self.reason)


def good(channel: Channel, index: int, values: list[float]) -> Record:
    return Record(channel.name.encode(), json.dumps(channel.message(index, values=values)).encode(), None)


def _plain(
    of: Channel, key: bytes | None = None, **changes: Any
) -> Callable[[int], tuple[bytes | None, bytes]]:
    def render(index: int) -> tuple[bytes | None, bytes]:
        body = of.message(index, **changes)
        return (of.name.encode() if key is None else key), json.dumps(body).encode()

    return render


def _malformed(channel: Channel) -> st.SearchStrategy[Defect]:
    """A good message truncated, or with one byte replaced by NUL or 0xFF (never valid JSON or UTF-8)."""

    @st.composite
    def build(draw: st.DrawFn) -> Defect:
        cut = draw(st.floats(0.0, 0.999))
        poison = draw(st.sampled_from([None, b"\x00", b"\xff"]))

        def render(index: int) -> tuple[bytes | None, bytes]:
            text = json.dumps(channel.message(index)).encode()
            at = int(cut * len(text))
            broken = text[: max(1, at)] if poison is None else text[:at] + poison + text[at + 1 :]
            return channel.name.encode(), broken

        return Defect("malformed_json", render)

    return build()


def _wrong_schema(channel: Channel) -> st.SearchStrategy[Defect]:
    not_an_object = st.one_of(
        st.integers(), LETTERS, st.lists(st.integers(), max_size=3), st.none(), st.booleans()
    ).map(lambda value: Defect("wrong_schema", lambda _: (channel.name.encode(), json.dumps(value).encode())))
    wrong_id = st.one_of(LETTERS, st.none(), st.integers()).map(
        lambda schema: Defect("wrong_schema", _plain(channel, schema=schema))
    )
    missing = st.just(
        Defect(
            "wrong_schema",
            lambda i: (
                channel.name.encode(),
                json.dumps({k: v for k, v in channel.message(i).items() if k != "schema"}).encode(),
            ),
        )
    )
    return st.one_of(not_an_object, wrong_id, missing)


def _invalid_fields(channel: Channel) -> st.SearchStrategy[Defect]:
    def without(name: str) -> Defect:
        def render(i: int) -> tuple[bytes | None, bytes]:
            body = {k: v for k, v in channel.message(i).items() if k != name}
            return channel.name.encode(), json.dumps(body).encode()

        return Defect("invalid_fields", render)

    return st.one_of(
        st.sampled_from(REQUIRED).map(without),
        NOT_AN_INDEX.map(lambda v: Defect("invalid_fields", _plain(channel, index=v))),
        st.one_of(LETTERS, st.none(), st.lists(st.integers(), max_size=2)).map(
            lambda v: Defect("invalid_fields", _plain(channel, event_time_ms=v))
        ),
        NOT_VALUES.map(lambda v: Defect("invalid_fields", _plain(channel, values=v))),
        NOT_TEXT.map(lambda v: Defect("invalid_fields", _plain(channel, spacecraft=v))),
        LETTERS.filter(lambda k: k not in (*REQUIRED, "schema")).map(
            lambda k: Defect("invalid_fields", _plain(channel, **{k: 1}))
        ),
    )


def _nan_or_inf(channel: Channel) -> st.SearchStrategy[Defect]:
    @st.composite
    def build(draw: st.DrawFn) -> Defect:
        position = draw(st.integers(0, channel.width - 1))
        literal = draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e999"]))

        def render(index: int) -> tuple[bytes | None, bytes]:
            values = [0.0] * channel.width
            values[position] = 12345.678  # replaced below by the literal, which json.dumps cannot write
            text = json.dumps(channel.message(index, values=values)).replace("12345.678", literal, 1)
            return channel.name.encode(), text.encode()

        return Defect("nan_or_inf", render)

    return build()


def _out_of_range(channel: Channel) -> st.SearchStrategy[Defect]:
    """Finite, but past float32 (the worker's rows): 1e39 would become inf there."""
    huge = st.floats(3.41e38, 1.7e308).flatmap(lambda v: st.sampled_from([v, -v]))
    positions = st.integers(0, channel.width - 1)
    return st.tuples(huge, positions).map(
        lambda drawn: Defect(
            "out_of_range",
            _plain(channel, values=[drawn[0] if i == drawn[1] else 0.0 for i in range(channel.width)]),
        )
    )


def _wrong_width(channel: Channel) -> st.SearchStrategy[Defect]:
    width = channel.width
    sizes = st.one_of(
        st.integers(1, width - 1), st.integers(width + 1, 3 * width), st.integers(20_000, 60_000)
    )  # the last: payloads of 100-600 kB
    return sizes.map(lambda n: Defect("wrong_width", _plain(channel, values=[0.25] * n)))


def _unknown_channel(channel: Channel, known: frozenset[str]) -> st.SearchStrategy[Defect]:
    names = st.one_of(
        st.text(min_size=1, max_size=20), st.integers(50_000, 100_000).map(lambda n: "X" * n)
    ).filter(lambda n: n not in known)
    return names.map(lambda n: Defect("unknown_channel", _plain(channel, key=n.encode(), channel=n)))


def _key_mismatch(channel: Channel) -> st.SearchStrategy[Defect]:
    keys = st.one_of(st.text(min_size=1, max_size=20).map(str.encode), st.binary(min_size=1, max_size=8))
    return keys.filter(lambda k: k.decode(errors="replace") != channel.name).map(
        lambda k: Defect("key_mismatch", _plain(channel, key=k))
    )


def _stale_index(channel: Channel) -> st.SearchStrategy[Defect]:
    duplicate = st.just(Defect("duplicate_index", _shifted(channel, 1), needs=1))
    older = st.integers(2, 500).map(
        lambda back: Defect("out_of_order_index", _shifted(channel, back), needs=back)
    )
    return st.one_of(duplicate, older)


def _shifted(channel: Channel, back: int) -> Callable[[int], tuple[bytes | None, bytes]]:
    return lambda index: (channel.name.encode(), json.dumps(channel.message(index - back)).encode())


def defects(channel: Channel, known: frozenset[str]) -> st.SearchStrategy[Defect]:
    """Every kind of bad record of ``channel``'s topic (``known``: channels in the registry)."""
    return st.one_of(
        _malformed(channel),
        _wrong_schema(channel),
        _invalid_fields(channel),
        _nan_or_inf(channel),
        _out_of_range(channel),
        _wrong_width(channel),
        _unknown_channel(channel, known),
        _key_mismatch(channel),
        _stale_index(channel),
    )


def interleave(
    plan: list[Defect | None], channel: Channel, row: Callable[[int], list[float]]
) -> list[Record]:
    """Records in send order: ``None`` in ``plan`` is the next good point; defects that need more good
    points than were sent so far are dropped."""
    records, next_index = [], 0
    for step in plan:
        if step is None:
            records.append(good(channel, next_index, row(next_index)))
            next_index += 1
        elif step.needs <= next_index:
            records.append(step.record(next_index))
    return records
