"""`tmstream bench <name>`: run ``benchmarks.<name>.run()`` and print its result as one JSON line."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import typer

from tmstream.ground.settings import PROJECT_ROOT

app = typer.Typer(no_args_is_help=True, help="Benchmarks: one command per benchmarks/<name>.py.")


@app.callback()
def bench() -> None:
    """Each benchmark prints one JSON line with its measurements."""


def _register(name: str) -> None:
    def command() -> None:
        result = importlib.import_module(f"benchmarks.{name}").run()
        sys.stdout.write(json.dumps(result, sort_keys=True, default=str) + "\n")

    command.__doc__ = f"Run benchmarks/{name}.py."
    app.command(name.replace("_", "-"))(command)


for _path in sorted(Path(PROJECT_ROOT, "benchmarks").glob("*.py")):
    if not _path.stem.startswith("_"):
        _register(_path.stem)
