"""Prometheus (Debian's ``prometheus``) scraping tmstream's metrics endpoints.

Workers and producers announce their ``/metrics`` address by writing a file-discovery target
(``<state_dir>/prometheus/targets/<name>.json``); Prometheus picks new files up without a restart.
"""

from __future__ import annotations

import yaml

from tmstream.ground.resources import packaged
from tmstream.ground.scrape_targets import targets_dir
from tmstream.ground.settings import Settings
from tmstream.stack.process import ServiceProcess, http_ready, require

RULES_DIR = packaged("prometheus")  # deploy/prometheus/rules in the source tree


def scrape_config(settings: Settings) -> dict[str, object]:
    interval = settings.prometheus.scrape_interval
    alerting = settings.alertmanager
    targets = [alerting.effective_url.split("://", 1)[-1]] if alerting.enabled else []
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": targets}]}]},
        "rule_files": [str(RULES_DIR / "*.yml")],
        "scrape_configs": [
            {
                "job_name": "tmstream",
                "file_sd_configs": [
                    {"files": [str(targets_dir(settings) / "*.json")], "refresh_interval": "2s"}
                ],
            }
        ],
    }


class PrometheusService:
    name = "prometheus"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.process = ServiceProcess("prometheus", settings.state_dir / "prometheus")

    @property
    def address(self) -> str:
        return self.settings.prometheus.effective_url

    @property
    def managed(self) -> bool:
        return not self.settings.prometheus.external

    def healthy(self) -> bool:
        return http_ready(f"{self.address}/-/ready")

    def preflight(self) -> None:
        port = self.settings.prometheus.port
        require("prometheus", "prometheus", "prometheus", port, "TMSTREAM_PROMETHEUS_PORT")

    def start(self) -> None:
        folder = self.process.folder
        targets_dir(self.settings).mkdir(parents=True, exist_ok=True)
        config = folder / "prometheus.yml"
        config.write_text(yaml.safe_dump(scrape_config(self.settings), sort_keys=False))
        self.process.start(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.settings.prometheus.port}",
                "--web.enable-lifecycle",
                "--storage.tsdb.retention.time=7d",
            ]
        )
