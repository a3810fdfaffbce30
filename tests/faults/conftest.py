"""Fault tests reuse the integration suite's real stack and isolated ``pipeline`` (same session).

Each scenario adds its figures to ``fault_table``; the table is printed at the end of the run
(``pytest -m fault``) and written to ``<state_dir>/fault-table.md`` for docs/RELIABILITY.md.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import (  # noqa: F401  (fixtures, re-exported for this folder)
    pipeline,
    reference_models,
    stack,
    stack_settings,
)

ROWS: list[dict[str, Any]] = []
COLUMNS = {
    "scenario": "scenario",
    "kill_points": "kill points",
    "after_emissions": "after emissions",
    "points_lost": "points lost",
    "expected": "emissions expected",
    "lost": "lost",
    "duplicated": "duplicated",
    "extra": "extra",
    "recover_s": "recovery (s)",
}
TABLE: list[Path] = []


@pytest.fixture
def fault_table(request: pytest.FixtureRequest) -> Callable[..., None]:
    """Record one scenario's row: its kill points and its emissions lost / duplicated / extra
    (summed over the topic and Redis, as ``assert_same_emissions`` counts them)."""
    TABLE[:] = [Path(request.getfixturevalue("stack_settings").state_dir) / "fault-table.md"]

    def add(**figures: Any) -> None:
        ROWS.append(figures)

    return add


def render() -> str:
    lines = ["| " + " | ".join(COLUMNS.values()) + " |", "|" + "---|" * len(COLUMNS)]
    for row in ROWS:
        cells = []
        for key in COLUMNS:
            value = row.get(key, "")
            cells.append(f"{value:.1f}" if isinstance(value, float) else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    after = sum(int(row.get("after_emissions", 0)) for row in ROWS)
    lines.append(f"\n{after} kill points after emissions in all.")
    return "\n".join(lines)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not ROWS:
        return
    table = render()
    terminalreporter.section("fault scenarios")
    terminalreporter.write_line(table)
    if TABLE:
        TABLE[0].parent.mkdir(parents=True, exist_ok=True)
        TABLE[0].write_text(table + "\n")
