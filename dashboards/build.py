"""Generate the boards' JSON, load it back through the SDK's models, and list every query in it.

``panel_queries`` is what the live test runs against Prometheus: the targets of every panel plus
the annotation queries, read from the generated JSON (not from the builders), so what is checked
is exactly what Grafana would execute.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards.boards import BOARDS
from tmstream.ground.resources import project_dir

DASHBOARDS_DIR = project_dir() / "deploy" / "grafana" / "dashboards"  # written: the checkout, else ./deploy
register_default_plugins()


@dataclass(frozen=True)
class PanelQuery:
    board: str
    panel: str
    expr: str
    instant: bool
    repeat: str | None


def board_json(name: str) -> dict[str, Any]:
    """The board as plain JSON (what Grafana stores and ``push`` sends)."""
    built = BOARDS[name]().build()
    loaded: dict[str, Any] = json.loads(json.dumps(built, cls=JSONEncoder))
    for panel in loaded.get("panels", []):
        # The SDK writes ``"options": null`` for panels left at Grafana's default options, which its
        # own ``from_json`` cannot read back; leaving the key out means the same to Grafana.
        if panel.get("options") is None:
            panel.pop("options", None)
    return loaded


def write_dashboards(folder: Path = DASHBOARDS_DIR) -> list[Path]:
    """Write every board to ``<folder>/<name>.json`` (stable key order, so diffs stay readable)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in BOARDS:
        path = folder / f"{name}.json"
        path.write_text(json.dumps(board_json(name), indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


def load_dashboard(path: Path) -> Dashboard:
    """Parse a generated file through the SDK's typed models (panels, targets, variables)."""
    return Dashboard.from_json(json.loads(path.read_text()))


def panel_queries(board: dict[str, Any]) -> list[PanelQuery]:
    found = []
    for panel in board.get("panels", []):
        for target in panel.get("targets", []):
            found.append(
                PanelQuery(
                    board["uid"],
                    panel["title"],
                    target["expr"],
                    bool(target.get("instant")) and not target.get("range"),
                    panel.get("repeat"),
                )
            )
    for annotation in board.get("annotations", {}).get("list", []):
        if annotation.get("expr"):
            found.append(
                PanelQuery(board["uid"], f"annotation {annotation['name']}", annotation["expr"], False, None)
            )
    return found


def variable_queries(board: dict[str, Any]) -> dict[str, str]:
    """``{name: label_values(...) query}`` of the board's query variables, in dependency order."""
    return {
        variable["name"]: variable["query"]
        for variable in board.get("templating", {}).get("list", [])
        if variable.get("type") == "query"
    }


def substitute(expr: str, values: dict[str, str]) -> str:
    """Replace ``$name`` / ``${name}`` the way Grafana does for single values (longest names first)."""
    for name in sorted(values, key=len, reverse=True):
        pattern = rf"\$\{{{re.escape(name)}\}}|\${re.escape(name)}\b"
        expr = re.sub(pattern, values[name].replace("\\", "\\\\"), expr)
    return expr
