"""The Dockerfile and .dockerignore against pyproject.toml, the settings and the CLI."""

from __future__ import annotations

import json
import re
import tomllib

from tmstream.ground.settings import PROJECT_ROOT, WorkerSettings

DOCKERFILE = (PROJECT_ROOT / "Dockerfile").read_text()
PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())


def instructions(keyword: str) -> list[str]:
    """Arguments of every ``keyword`` instruction, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [line.split(None, 1)[1] for line in joined.splitlines() if line.startswith(keyword + " ")]


def test_base_image_is_pinned_to_the_supported_python() -> None:
    [base] = [arg.split("=", 1)[1] for arg in instructions("ARG") if arg.startswith("PYTHON_IMAGE=")]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base), base
    assert PYPROJECT["project"]["requires-python"].startswith(">=3.11,<3.12")
    assert instructions("FROM") == ["${PYTHON_IMAGE} AS builder", "${PYTHON_IMAGE} AS runtime"]


def test_worker_image_leaves_out_the_train_extra() -> None:
    assert 'ARG EXTRAS=""' in DOCKERFILE and 'pip install -e ".${EXTRAS:+[$EXTRAS]}"' in DOCKERFILE
    assert "train" in PYPROJECT["project"]["optional-dependencies"]


def test_entrypoint_user_port_and_healthcheck() -> None:
    assert [json.loads(arg) for arg in instructions("ENTRYPOINT")] == [["tmstream"]]
    assert "tmstream" in PYPROJECT["project"]["scripts"]
    assert instructions("USER") == ["tmstream"]
    port = WorkerSettings().metrics_port
    assert instructions("EXPOSE") == [str(port)]
    assert f"TMSTREAM_WORKER_METRICS_PORT={port}" in DOCKERFILE
    [check] = instructions("HEALTHCHECK")
    assert "/health" in check and "TMSTREAM_WORKER_METRICS_PORT" in check


def test_variables_are_settings(setting_variables) -> None:
    names = set(re.findall(r"\b(TMSTREAM_\w+)=", DOCKERFILE))
    assert {"TMSTREAM_CONFIG_DIR", "TMSTREAM_DATA_DIR", "TMSTREAM_STATE_DIR"} <= names <= setting_variables


def test_everything_copied_exists_and_passes_dockerignore() -> None:
    copied = [src for arg in instructions("COPY") if not arg.startswith("--from") for src in arg.split()[:-1]]
    allowed = {
        line[1:].rstrip("/")
        for line in (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    for source in copied:
        assert (PROJECT_ROOT / source).exists(), source
    assert set(copied) <= allowed
    packages = {
        pattern.rstrip("*") for pattern in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    assert packages <= allowed, "a package the image installs is kept out of the build context"
    assert PYPROJECT["project"]["readme"] in allowed
