"""Alertmanager (Debian's ``prometheus-alertmanager``) receiving the local Prometheus's alerts.

Optional (``alertmanager.enabled``): on by default for development, off in the testing overlay so
the suite's stack stays three processes. Its routes and receivers are in
``deploy/alertmanager/alertmanager.yml``.
"""

from __future__ import annotations

from tmstream.ground.resources import packaged
from tmstream.ground.settings import Settings
from tmstream.stack.process import ServiceProcess, http_ready, require

CONFIG = packaged("alertmanager") / "alertmanager.yml"  # deploy/alertmanager/ in the source tree


class AlertmanagerService:
    name = "alertmanager"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.process = ServiceProcess("alertmanager", settings.state_dir / "alertmanager")

    @property
    def address(self) -> str:
        return self.settings.alertmanager.effective_url

    @property
    def managed(self) -> bool:
        return not self.settings.alertmanager.external

    def healthy(self) -> bool:
        return http_ready(f"{self.address}/-/ready")

    def preflight(self) -> None:
        port = self.settings.alertmanager.port
        require("alertmanager", "prometheus-alertmanager", "prometheus-alertmanager", port,
                "TMSTREAM_ALERTMANAGER_PORT")  # fmt: skip

    def start(self) -> None:
        folder = self.process.folder
        self.process.start(
            [
                "prometheus-alertmanager",
                f"--config.file={CONFIG}",
                f"--storage.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.settings.alertmanager.port}",
                "--cluster.listen-address=",
            ]
        )
