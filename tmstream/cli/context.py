"""What every command shares: the settings built from global flags, and the output consoles."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.console import Console

from tmstream.ground.settings import Settings, load_settings

console = Console()
err_console = Console(stderr=True)


def settings_from(ctx: typer.Context, **overrides: Any) -> Settings:
    """The settings for this invocation: global flags (``ctx.obj``) plus a command's own flags."""
    merged: dict[str, Any] = dict(ctx.find_root().obj or {})
    for dotted, value in overrides.items():
        if value is None:
            continue
        section, _, key = dotted.partition("__")
        if key:
            merged.setdefault(section, {})[key] = value
        else:
            merged[section] = value
    return load_settings(merged)


def emit_json(payload: Any) -> None:
    """One JSON document on stdout, the stable machine-readable form of a listing."""
    sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
