"""Shared fixtures: the real NASA data and the settings of the test environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from producers.dataset import TelemanomDataset
from tmstream.ground.settings import PROJECT_ROOT, Settings, load_settings

NASA_DIR = (PROJECT_ROOT.parent / "shared" / "nasa").resolve()


@pytest.fixture(autouse=True)
def no_leaked_mlflow_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow's fluent API exports MLFLOW_TRACKING_URI; a test must not hand its registry to the next
    test's worker processes, so the variables are restored after every test."""
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def nasa_dir() -> Path:
    if not (NASA_DIR / "labeled_anomalies.csv").is_file():
        pytest.skip(f"the NASA data set is not at {NASA_DIR}")
    return NASA_DIR


@pytest.fixture(scope="session")
def nasa(nasa_dir: Path) -> TelemanomDataset:
    return TelemanomDataset(nasa_dir)


@pytest.fixture
def test_settings(tmp_path: Path) -> Settings:
    """Testing-environment settings with a private state folder (no services involved)."""
    return load_settings({"environment": "testing", "state_dir": str(tmp_path / "state")})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything under tests/integration needs the real stack: mark it so `-m "not integration"` works."""
    for item in items:
        if "tests/integration/" in str(item.path) or "tests/faults/" in str(item.path):
            item.add_marker(pytest.mark.integration)
