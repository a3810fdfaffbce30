"""Hypothesis strategies for testing a JSON Schema against the model it was generated from.

``near_misses`` edits valid instances a little (a key dropped or added, a value swapped for another
JSON value), so most candidates break one rule of the schema, and among the replacements are the
values a lax parser would coerce (``"7"``, ``7.0``, ``true``, ``null``) — exactly where a model
and its schema drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

FINITE = st.floats(allow_nan=False, allow_infinity=False)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(10**6), 10**6).map(float),
    FINITE,
    st.text(max_size=8),
    st.integers().map(str),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def near_misses(
    valid: st.SearchStrategy[dict[str, Any]], traps: Sequence[str] = ()
) -> st.SearchStrategy[dict[str, Any]]:
    """Valid instances with one to three edits: drop a key, or set a key (known, new, or one of
    ``traps``, such as a field's Python name beside its wire alias) to any JSON value."""

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        instance = dict(draw(valid))
        known = sorted(instance)
        for _ in range(draw(st.integers(1, 3))):
            key = draw(st.one_of(st.sampled_from([*known, *traps]), st.text(max_size=10)))
            if key in instance and draw(st.booleans()):
                del instance[key]
            else:
                instance[key] = draw(JSON_VALUES)
        return instance

    return build()
