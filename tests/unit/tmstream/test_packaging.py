"""The wheel: every package and data file inside, found through importlib.resources; deps declared."""

from __future__ import annotations

import ast
import email
import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tmstream.ground.settings import PROJECT_ROOT

PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
RUNTIME_ROOTS = [
    "tmstream",
    "producers",
    "stream_workers",
    "model_store",
    "dashboards",
    "workorders",
    "evaluation",
]
DATA = {
    "tmstream/resources/config": ("config", "*.yaml"),
    "tmstream/resources/schemas": ("schemas", "*.json"),
    "tmstream/resources/prometheus": ("deploy/prometheus/rules", "*.yml"),
    "tmstream/resources/alertmanager": ("deploy/alertmanager", "*.yml"),
    "tmstream/resources/kafka": ("deploy/local/kafka", "pom.xml"),
}


def requirement_name(requirement: str) -> str:
    return re.split(r"[\[<>=!~;@ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_every_package_of_the_tree_is_listed() -> None:
    """Packages are listed (not discovered) because of the resource mapping: a new one must be added."""
    found = {
        ".".join(init.parent.relative_to(PROJECT_ROOT).parts)
        for root in RUNTIME_ROOTS
        for init in (PROJECT_ROOT / root).rglob("__init__.py")
    }
    listed = set(SETUPTOOLS["packages"])
    assert found == {name for name in listed if name not in SETUPTOOLS["package-dir"]}
    assert not any(name.startswith("benchmarks") for name in listed)
    for package, folder in SETUPTOOLS["package-dir"].items():
        assert package in listed and (PROJECT_ROOT / folder / "__init__.py").is_file(), package


def test_every_third_party_import_is_declared() -> None:
    project = PYPROJECT["project"]
    runtime = {requirement_name(r) for r in project["dependencies"]}
    extras = {requirement_name(r) for group in project["optional-dependencies"].values() for r in group}
    distributions = importlib.metadata.packages_distributions()
    local = {*RUNTIME_ROOTS, "benchmarks"}
    undeclared = set()
    for root in RUNTIME_ROOTS:
        for path in (PROJECT_ROOT / root).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for top in {name.split(".")[0] for name in names} - local - set(sys.stdlib_module_names):
                    candidates = {requirement_name(d) for d in distributions.get(top, [top])}
                    if not candidates & (runtime | extras):
                        undeclared.add(f"{top} ({path.relative_to(PROJECT_ROOT)})")
    assert not undeclared
    assert {"jsonschema", "matplotlib"}.isdisjoint(runtime), "test-only and report-only deps are extras"
    assert "matplotlib" in {requirement_name(r) for r in project["optional-dependencies"]["report"]}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the sources (the checkout gets no build/ folder)."""
    if tuple(int(part) for part in importlib.metadata.version("setuptools").split(".")[:2]) < (77, 0):
        pytest.skip("setuptools>=77 is needed to build the wheel (the dev extra installs it)")
    source = tmp_path_factory.mktemp("source")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ["pyproject.toml", "README.md"]:
        shutil.copy(PROJECT_ROOT / name, source / name)
    folders = {*RUNTIME_ROOTS, *SETUPTOOLS["package-dir"].values()}
    for folder in folders:
        shutil.copytree(PROJECT_ROOT / folder, source / folder, ignore=ignore)
    dist = tmp_path_factory.mktemp("dist")
    command = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "-q",
        "--no-deps",
        "--no-build-isolation",
        "-w",
        dist,
        source,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    [built] = dist.glob("*.whl")
    return built


def test_the_wheel_carries_the_package_data_and_no_benchmarks(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for package, (folder, pattern) in DATA.items():
        expected = {f"{package}/{path.name}" for path in (PROJECT_ROOT / folder).glob(pattern)}
        assert expected and expected <= names, package
    assert "producers/nasa_manifest.sha256" in names
    assert not any(name.startswith(("benchmarks/", "tests/", "config/", "deploy/")) for name in names)
    [metadata_name] = [name for name in names if name.endswith(".dist-info/METADATA")]
    metadata = email.message_from_bytes(zipfile.ZipFile(wheel).read(metadata_name))
    assert metadata["Requires-Python"] == ">=3.11" and metadata["License-Expression"] == "Apache-2.0"
    unconditional = {
        requirement_name(r) for r in metadata.get_all("Requires-Dist") or [] if "extra ==" not in r
    }
    assert {"scipy", "aiohttp"} <= unconditional and {"jsonschema", "matplotlib"}.isdisjoint(unconditional)


def test_importlib_resources_finds_each_resource_in_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    """Unpacked as pip would install it, run from another folder with no site-packages (``-S``)."""
    installed = tmp_path / "site-packages"
    zipfile.ZipFile(wheel).extractall(installed)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); from tmstream.ground import resources as r; "
        "names = ['config', 'schemas', 'prometheus', 'alertmanager', 'kafka']; "
        "print(json.dumps({'folders': {n: str(r.packaged(n)) for n in names}, "
        "'checkout': r.source_checkout(), 'project': str(r.project_dir()), "
        "'config_dir': str(r.config_dir()), "
        "'settings_files': str(r.settings_files()), 'benchmarks': r.benchmarks_dir()}))"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-c", code, str(installed)],
        capture_output=True, text=True, cwd=elsewhere, timeout=60, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    for name, folder in found["folders"].items():
        assert Path(folder) == installed / "tmstream" / "resources" / name
    for package, (_, pattern) in DATA.items():
        assert any((installed / package).glob(pattern)), package
    assert found["checkout"] is None and found["benchmarks"] is None
    assert Path(found["project"]) == elsewhere and Path(found["config_dir"]) == elsewhere / "config"
    assert Path(found["settings_files"]) == installed / "tmstream" / "resources" / "config"
