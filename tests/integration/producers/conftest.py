"""A private channel registry per test, so replays never touch the shared topics."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml


@pytest.fixture
def registry_file(tmp_path: Path, topic_name: str) -> Path:
    """A registry that sends P-1 to this test's own topic (outside the workers' subscription)."""
    path = tmp_path / "channels.yaml"
    path.write_text(yaml.safe_dump({"channels": {"P-1": {"topic": f"{topic_name}.P-1"}}}))
    return path
