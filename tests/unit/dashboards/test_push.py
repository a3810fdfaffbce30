"""`push` against a small local HTTP server of this test that stores what it is sent under the
handful of Grafana HTTP API routes push uses. It is not Grafana: it proves the requests push
makes (create when absent, nothing when unchanged, update when changed, token sent), not that
a real Grafana accepts the boards."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from grafana_client import GrafanaApi

from dashboards.boards import BOARDS
from dashboards.push import PushError, push


class FakeGrafana(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.folders: dict[str, dict[str, Any]] = {}
        self.datasources: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, str | None]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def writes(self) -> list[tuple[str, str]]:
        return [(method, path) for method, path, _ in self.requests if method != "GET"]


class Handler(BaseHTTPRequestHandler):
    server: FakeGrafana

    def log_message(self, *args: Any) -> None:
        return

    def _reply(self, status: int, body: object) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _body(self) -> dict[str, Any]:
        return dict(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))

    def _record(self) -> list[str]:
        self.server.requests.append((self.command, self.path, self.headers.get("Authorization")))
        return self.path.strip("/").split("/")

    def do_GET(self) -> None:
        parts, store = self._record(), self.server
        found: dict[str, Any] | None = None
        if parts[:2] == ["api", "folders"]:
            found = store.folders.get(parts[2])
        elif parts[:3] == ["api", "datasources", "uid"]:
            found = store.datasources.get(parts[3])
        elif parts[:3] == ["api", "dashboards", "uid"]:
            found = store.dashboards.get(parts[3])
        self._reply(200, found) if found is not None else self._reply(404, {"message": "not found"})

    def do_POST(self) -> None:
        parts, body, store = self._record(), self._body(), self.server
        if parts == ["api", "folders"]:
            store.folders[body["uid"]] = {"uid": body["uid"], "title": body["title"], "id": 1, "version": 1}
        elif parts == ["api", "datasources"]:
            store.datasources[body["uid"]] = {**body, "id": 7}
        elif parts == ["api", "dashboards", "db"]:
            board = {**body["dashboard"], "id": 3, "version": 2}
            store.dashboards[board["uid"]] = {"dashboard": board, "meta": {"folderUid": body["folderUid"]}}
        self._reply(200, {"status": "success"})

    def do_PUT(self) -> None:
        parts, body, store = self._record(), self._body(), self.server
        if parts[:2] == ["api", "folders"]:
            store.folders[parts[2]]["title"] = body["title"]
        elif parts[:3] == ["api", "datasources", "uid"]:
            store.datasources[parts[3]] = {**body, "id": 7}
        self._reply(200, {"status": "success"})


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    server = FakeGrafana()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def actions(changes: list[Any]) -> dict[tuple[str, str], str]:
    return {(change.kind, change.uid): change.action for change in changes}


def test_first_push_creates_everything_and_the_second_changes_nothing(grafana: FakeGrafana) -> None:
    api = GrafanaApi.from_url(grafana.url, credential="secret-token")
    first = push(api, "http://prometheus:9090")
    assert set(actions(first).values()) == {"created"}
    assert len(first) == 2 + len(BOARDS)
    assert len(grafana.dashboards) == len(BOARDS)
    assert {auth for _, _, auth in grafana.requests} == {"Bearer secret-token"}

    writes_before = len(grafana.writes())
    second = push(api, "http://prometheus:9090")
    assert set(actions(second).values()) == {"unchanged"}
    assert len(grafana.writes()) == writes_before


def test_a_changed_board_or_datasource_url_is_updated_alone(grafana: FakeGrafana) -> None:
    api = GrafanaApi.from_url(grafana.url, credential="t")
    push(api, "http://prometheus:9090")
    grafana.dashboards["tmstream-channel"]["dashboard"]["title"] = "edited by hand"
    changes = actions(push(api, "http://other-prometheus:9090"))
    assert changes.pop(("dashboard", "tmstream-channel")) == "updated"
    assert changes.pop(("datasource", "tmstream-prometheus")) == "updated"
    assert set(changes.values()) == {"unchanged"}
    assert grafana.datasources["tmstream-prometheus"]["url"] == "http://other-prometheus:9090"
    assert grafana.dashboards["tmstream-channel"]["dashboard"]["title"] == "tmstream — channel"


def test_unreachable_grafana_is_one_clear_error() -> None:
    api = GrafanaApi.from_url("http://127.0.0.1:9", credential="t", timeout=2)
    with pytest.raises(PushError, match="not reachable"):
        push(api, "http://prometheus:9090")
