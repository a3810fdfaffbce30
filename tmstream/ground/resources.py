"""Where tmstream's own files are: packaged data it reads, and the project folder it writes under.

Read-only files (config defaults, JSON schemas, Prometheus rules, Alertmanager config, the Kafka
POM) ship as the ``tmstream.resources.*`` packages, found through ``importlib.resources``: in a
source checkout (an editable install) they are the checkout's own ``config/``, ``schemas/`` and
``deploy/`` folders, in a wheel install copies inside the package. What tmstream writes (the local
stack's state, the channel registry, generated boards) goes under the project folder: the source
checkout, or in a wheel install the working directory, never site-packages.
"""

from __future__ import annotations

import os
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Literal

from tmstream.ground.exceptions import ConfigError

Resource = Literal["config", "schemas", "prometheus", "alertmanager", "kafka"]


@cache
def packaged(name: Resource) -> Path:
    """The folder of one packaged resource set (``tmstream.resources.<name>``)."""
    package = f"tmstream.resources.{name}"
    try:
        folder = files(package)
    except ModuleNotFoundError:
        raise ConfigError(
            f"{package} is not installed: reinstall tmstream (pip install -e . in a checkout)"
        ) from None
    if not isinstance(folder, Path):
        raise ConfigError(f"{package} is not on the file system ({folder}): install tmstream unzipped")
    return folder


@cache
def source_checkout() -> Path | None:
    """The source checkout tmstream runs from (config/ beside pyproject.toml), or None for a wheel."""
    root = packaged("config").parent
    return root if (root / "pyproject.toml").is_file() else None


def project_dir() -> Path:
    """What relative settings paths are taken from and writable defaults go under."""
    return source_checkout() or Path.cwd()


def config_dir() -> Path:
    """The config folder: ``TMSTREAM_CONFIG_DIR``, else ``config/`` under the project folder.

    ``tmstream channels add`` writes its ``channels.yaml`` here; settings YAML is read from here when
    the folder holds a ``default.yaml``, else from the packaged defaults (see ``settings_files``).
    """
    explicit = os.environ.get("TMSTREAM_CONFIG_DIR")
    return Path(explicit) if explicit else project_dir() / "config"


def settings_files() -> Path:
    """The folder holding ``default.yaml`` and the ``<environment>.yaml`` overlays.

    ``TMSTREAM_CONFIG_DIR`` must hold a ``default.yaml``; without it a wheel install run from a
    folder with no ``config/default.yaml`` reads the packaged defaults.
    """
    folder = config_dir()
    if os.environ.get("TMSTREAM_CONFIG_DIR") or (folder / "default.yaml").is_file():
        return folder
    return packaged("config")


def benchmarks_dir() -> Path | None:
    """``benchmarks/`` of the source checkout; benchmarks are not installed with the wheel."""
    checkout = source_checkout()
    return checkout / "benchmarks" if checkout and (checkout / "benchmarks").is_dir() else None
