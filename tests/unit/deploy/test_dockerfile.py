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
    assert PYPROJECT["project"]["requires-python"] == ">=3.11"
    assert instructions("FROM") == ["${PYTHON_IMAGE} AS builder", "${PYTHON_IMAGE} AS runtime"]


def test_worker_image_installs_the_wheel_without_the_train_extra() -> None:
    [install] = [arg for arg in instructions("RUN") if "pip wheel" in arg]
    assert "pip wheel --no-deps -w /dist ." in install
    assert 'pip install "$(echo /dist/*.whl)${EXTRAS:+[$EXTRAS]}"' in install
    assert 'ARG EXTRAS=""' in DOCKERFILE and "pip install -e" not in DOCKERFILE
    assert "train" in PYPROJECT["project"]["optional-dependencies"]


def test_the_runtime_stage_holds_the_venv_only() -> None:
    """Package data travels in the wheel: no source tree, no config folder beside it."""
    runtime = DOCKERFILE.split("AS runtime", 1)[1]
    assert re.findall(r"^COPY (.+)$", runtime, re.M) == ["--from=builder /opt/venv /opt/venv"]


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
    assert {"TMSTREAM_DATA_DIR", "TMSTREAM_STATE_DIR"} <= names <= setting_variables


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
    setuptools = PYPROJECT["tool"]["setuptools"]
    mapped = setuptools["package-dir"]
    sources = {mapped.get(package, package.split(".")[0]) for package in setuptools["packages"]}
    assert sources <= set(copied), "a folder the wheel is built from is not copied into the builder"
    assert PYPROJECT["project"]["readme"] in allowed
