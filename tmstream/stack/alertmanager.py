"""Alertmanager (Debian's ``prometheus-alertmanager``) receiving the local Prometheus's alerts.

Optional (``alertmanager.enabled``): on by default for development, off in the testing overlay so
the suite's stack stays three processes. Its routes and receivers are in
``deploy/alertmanager/alertmanager.yml``.
"""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request

from tmstream.exceptions import StackError
from tmstream.settings import PROJECT_ROOT, Settings
from tmstream.stack.process import ServiceProcess, port_is_free

CONFIG = PROJECT_ROOT / "deploy" / "alertmanager" / "alertmanager.yml"


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
        try:
            with urllib.request.urlopen(f"{self.address}/-/ready", timeout=3) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def preflight(self) -> None:
        if not shutil.which("prometheus-alertmanager"):
            raise StackError(
                "prometheus-alertmanager is not installed (apt-get install -y prometheus-alertmanager), "
                "or set TMSTREAM_ALERTMANAGER_ENABLED=false"
            )
        if not port_is_free(self.settings.alertmanager.port):
            raise StackError(
                f"alertmanager: port {self.settings.alertmanager.port} is already in use by another "
                "process (set TMSTREAM_ALERTMANAGER_PORT or stop it)"
            )

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
