"""What the deployment files are checked against: the settings and the CLI the code defines."""

from __future__ import annotations

import re
from collections.abc import Callable

import click
import pytest
import typer
from pydantic import BaseModel

from tmstream.cli import app
from tmstream.ground.settings import Settings

INTERPOLATION = re.compile(r"\$\{(\w+)(?::?[-?]([^}]*))?\}")


@pytest.fixture(scope="session")
def setting_variables() -> frozenset[str]:
    """Every TMSTREAM_* variable tmstream reads: one per settings field, plus TMSTREAM_CONFIG_DIR."""
    names = {"TMSTREAM_CONFIG_DIR"}
    for name, field in Settings.model_fields.items():
        section = field.annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            names |= {f"TMSTREAM_{name}_{key}".upper() for key in section.model_fields}
        else:
            names.add(f"TMSTREAM_{name}".upper())
    return frozenset(names)


@pytest.fixture(scope="session")
def interpolate() -> Callable[[str], str]:
    """A compose value with each ${VAR:-default} replaced by its default."""
    return lambda value: INTERPOLATION.sub(lambda m: m.group(2) or "", value)


@pytest.fixture(scope="session")
def parse_cli() -> Callable[[list[str]], click.Command]:
    """Parse a `tmstream` argument list as the CLI would; returns the leaf command or fails the test."""
    root = typer.main.get_command(app)

    def parse(args: list[str]) -> click.Command:
        command, rest = root, list(args)
        while isinstance(command, click.Group):
            assert rest, f"{args}: names a command group, not a command"
            name = rest.pop(0)
            assert name in command.commands, f"{args}: `{name}` is not a tmstream command"
            command = command.commands[name]
        try:
            command.make_context(command.name or "", rest)
        except click.UsageError as exc:
            pytest.fail(f"tmstream {' '.join(args)}: {exc}")
        return command

    return parse
