"""`tmstream bench <name>`: run ``benchmarks.<name>.run()`` and print its result as one JSON line.

Benchmarks are not installed with the wheel: they run from a source checkout, whose root is put on
``sys.path`` so ``benchmarks`` imports as the package it is there.
"""

from __future__ import annotations

import importlib
import json
import sys

import typer

from tmstream.ground.exceptions import TmstreamError
from tmstream.ground.resources import benchmarks_dir

app = typer.Typer(no_args_is_help=True, help="Benchmarks: one command per benchmarks/<name>.py.")
FOLDER = benchmarks_dir()


def add_to(cli: typer.Typer) -> None:
    """``tmstream bench``: the benchmarks group, or in a wheel install a command saying where they run."""
    if FOLDER is not None:
        cli.add_typer(app, name="bench")
        return
    any_arguments = {"allow_extra_args": True, "ignore_unknown_options": True}
    cli.command("bench", context_settings=any_arguments, add_help_option=False)(unavailable)


def unavailable() -> None:
    """Benchmarks (they run from a source checkout)."""
    raise TmstreamError("benchmarks run from a source checkout (benchmarks/ is not installed)")


@app.callback()
def bench() -> None:
    """Each benchmark prints one JSON line with its measurements."""


def _register(name: str) -> None:
    def command() -> None:
        if FOLDER is not None and str(FOLDER.parent) not in sys.path:
            sys.path.insert(0, str(FOLDER.parent))
        result = importlib.import_module(f"benchmarks.{name}").run()
        sys.stdout.write(json.dumps(result, sort_keys=True, default=str) + "\n")

    command.__doc__ = f"Run benchmarks/{name}.py."
    app.command(name.replace("_", "-"))(command)


for _path in sorted(FOLDER.glob("*.py")) if FOLDER else []:
    if not _path.stem.startswith("_"):
        _register(_path.stem)
