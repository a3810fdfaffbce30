"""Announcing a ``/metrics`` endpoint to Prometheus through file-based service discovery.

Workers, producers and the work-order service write ``<state_dir>/prometheus/targets/<job>-<name>.json``;
Prometheus picks new files up without a restart. Runtime code needs this, the local stack only reads it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tmstream.ground.settings import Settings


def targets_dir(settings: Settings) -> Path:
    return settings.state_dir / "prometheus" / "targets"


def register_scrape_target(settings: Settings, job: str, instance: str, address: str) -> Path:
    """Announce a metrics endpoint to the local Prometheus (file-based service discovery)."""
    folder = targets_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{job}-{instance}.json"
    staging = target.with_suffix(".tmp")
    staging.write_text(json.dumps([{"targets": [address], "labels": {"job": job, "instance": instance}}]))
    os.replace(staging, target)
    return target


def unregister_scrape_target(target: Path) -> None:
    target.unlink(missing_ok=True)
