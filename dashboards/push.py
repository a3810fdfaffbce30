"""Upsert the folder, the Prometheus datasource and every board into a running Grafana.

Idempotent: each object is read first and written only when it differs from what tmstream
generates, and the report says ``created``, ``updated`` or ``unchanged`` for each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from grafana_client import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException

from dashboards.boards import BOARDS, FOLDER_TITLE, FOLDER_UID
from dashboards.build import board_json
from dashboards.panels import DATASOURCE_UID
from tmstream.ground.exceptions import TmstreamError

DATASOURCE_NAME = "tmstream Prometheus"
# Fields Grafana adds to a stored object; they say nothing about whether its content changed.
SERVER_FIELDS = frozenset(
    {"id", "version", "orgId", "readOnly", "typeLogoUrl", "basicAuth", "withCredentials"}
)


class PushError(TmstreamError):
    """Grafana refused or could not be reached."""


@dataclass(frozen=True)
class Change:
    kind: str
    uid: str
    title: str
    action: str  # created, updated or unchanged

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "uid": self.uid, "title": self.title, "action": self.action}


def datasource_spec(prometheus_url: str) -> dict[str, Any]:
    return {
        "uid": DATASOURCE_UID,
        "name": DATASOURCE_NAME,
        "type": "prometheus",
        "access": "proxy",
        "url": prometheus_url,
        "isDefault": False,
        "jsonData": {"timeInterval": "5s", "httpMethod": "POST"},
    }


def _found(call: Any, *args: Any) -> Any | None:
    """The object, or None when Grafana answers 404."""
    try:
        return call(*args)
    except GrafanaClientError as exc:
        if exc.status_code == 404:
            return None
        raise


def _differs(current: dict[str, Any], desired: dict[str, Any]) -> bool:
    return any(current.get(key) != value for key, value in desired.items() if key not in SERVER_FIELDS)


def push(api: GrafanaApi, prometheus_url: str) -> list[Change]:
    try:
        return [_folder(api), _datasource(api, prometheus_url), *(_board(api, name) for name in BOARDS)]
    except GrafanaException as exc:
        raise PushError(f"grafana answered {exc.status_code}: {exc.message}") from exc
    except OSError as exc:
        raise PushError(f"grafana is not reachable: {exc}") from exc


def _folder(api: GrafanaApi) -> Change:
    current = _found(api.folder.get_folder, FOLDER_UID)
    if current is None:
        api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
        action = "created"
    elif current.get("title") != FOLDER_TITLE:
        api.folder.update_folder(FOLDER_UID, title=FOLDER_TITLE, overwrite=True)
        action = "updated"
    else:
        action = "unchanged"
    return Change("folder", FOLDER_UID, FOLDER_TITLE, action)


def _datasource(api: GrafanaApi, prometheus_url: str) -> Change:
    desired = datasource_spec(prometheus_url)
    current = _found(api.datasource.get_datasource_by_uid, DATASOURCE_UID)
    if current is None:
        api.datasource.create_datasource(desired)
        action = "created"
    elif _differs(current, desired):
        api.datasource.update_datasource_by_uid(DATASOURCE_UID, desired)
        action = "updated"
    else:
        action = "unchanged"
    return Change("datasource", DATASOURCE_UID, DATASOURCE_NAME, action)


def _board(api: GrafanaApi, name: str) -> Change:
    desired = board_json(name)
    current = _found(api.dashboard.get_dashboard, desired["uid"])
    if current is None:
        action = "created"
    elif current.get("meta", {}).get("folderUid") != FOLDER_UID or _differs(current["dashboard"], desired):
        action = "updated"
    else:
        return Change("dashboard", desired["uid"], desired["title"], "unchanged")
    api.dashboard.update_dashboard(
        {
            "dashboard": desired,
            "folderUid": FOLDER_UID,
            "overwrite": True,
            "message": "tmstream dashboards push",
        }
    )
    return Change("dashboard", desired["uid"], desired["title"], action)
