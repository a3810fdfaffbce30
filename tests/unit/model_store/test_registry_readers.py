"""The worker's registry reads without the MLflow client answer as the MlflowClient does.

SQLite: against versions the MlflowClient wrote. REST: against a stub server answering in the
JSON of MLflow 3.17's tracking server (the shapes checked against a real ``mlflow server``; the
registry-outage fault test runs a worker on one).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest

from model_store.exceptions import ModelNotFound, RegistryUnavailable
from model_store.registry import ModelRegistry
from model_store.registry_readers import RestRegistry, SqliteRegistry, reading_registry
from model_store.weights import save_npz
from tests.conftest import persistence_model
from tmstream.ground.settings import PROJECT_ROOT, Settings, load_settings


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A SQLite registry the MlflowClient wrote: P-1 v1 (champion, reference), v2 (challenger);
    S-1 v1 without a champion."""
    settings = load_settings({"state_dir": str(tmp_path_factory.mktemp("state"))})
    registry = ModelRegistry(settings)
    registry.register_weights(persistence_model("P-1", 25, seed=1), aliases=["champion", "reference"])
    registry.register_weights(persistence_model("P-1", 25, seed=2), aliases=["challenger"])
    registry.register_weights(persistence_model("S-1", 25, seed=3), aliases=["reference"])
    return settings


def test_sqlite_reads_answer_as_the_mlflow_client(registered: Settings) -> None:
    reader, client = reading_registry(registered), ModelRegistry(registered)
    assert isinstance(reader, SqliteRegistry)
    assert reader.channels() == client.channels() == ["P-1", "S-1"]
    for alias in ("champion", "reference", "challenger"):
        mine, theirs = reader.resolve("P-1", alias), client.resolve("P-1", alias)
        assert mine == type(theirs)(**{**vars(theirs), "aliases": tuple(sorted(theirs.aliases))})
    assert reader.resolve("P-1").aliases == ("champion", "reference")
    mine, theirs = reader.load(reader.resolve("P-1", "challenger")), client.load_alias("P-1", "challenger")
    assert (mine.content_hash(), mine.version) == (theirs.content_hash(), theirs.version)


def test_sqlite_reads_see_a_promotion_and_say_what_is_missing(registered: Settings) -> None:
    reader = reading_registry(registered)
    with pytest.raises(ModelNotFound, match="channel S-1 has no model under alias 'champion'"):
        reader.resolve("S-1")
    with pytest.raises(ModelNotFound, match="channel Q-9"):
        reader.resolve("Q-9")
    ModelRegistry(registered).promote("S-1", "1", "champion")
    assert reader.resolve("S-1").version == "1"


def test_a_sqlite_registry_not_created_yet_is_empty(tmp_path: Path) -> None:
    reader = reading_registry(load_settings({"state_dir": str(tmp_path)}))
    assert reader.channels() == []
    with pytest.raises(ModelNotFound):
        reader.resolve("P-1")


def test_an_unreadable_sqlite_registry_did_not_answer(tmp_path: Path) -> None:
    reader = reading_registry(load_settings({"state_dir": str(tmp_path)}))
    database = Path(reader.uri.removeprefix("sqlite:///"))
    database.parent.mkdir(parents=True)
    database.write_bytes(b"not a database" * 100)
    with pytest.raises(RegistryUnavailable, match="cannot read the MLflow registry"):
        reader.resolve("P-1")


def test_the_worker_resolves_and_loads_without_importing_mlflow(registered: Settings) -> None:
    script = (
        "import sys; from model_store.registry_readers import reading_registry;"
        "from tmstream.ground.settings import load_settings;"
        f"r = reading_registry(load_settings({{'state_dir': {str(registered.state_dir)!r}}}));"
        "r.load(r.resolve('P-1')); r.channels();"
        "print(sorted(m for m in ('mlflow', 'sqlalchemy', 'pandas') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_other_uris_keep_the_mlflow_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def reader(uri: str) -> ModelRegistry:
        return reading_registry(load_settings({"state_dir": str(tmp_path), "mlflow": {"tracking_uri": uri}}))

    assert type(reader("http://mlflow:5000")) is RestRegistry
    assert type(reader("postgresql://db/mlflow")) is ModelRegistry
    monkeypatch.setenv("MLFLOW_TRACKING_INSECURE_TLS", "true")  # a client option only MLflow has
    assert type(reader("https://mlflow:5000")) is ModelRegistry


class Stub:
    """An HTTP server answering ``(status, JSON or bytes)`` per path; records each request."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[int, Any]] = {}
        self.requests: list[tuple[str, dict[str, list[str]], str | None]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                stub.requests.append((url.path, parse_qs(url.query), self.headers.get("Authorization")))
                status, body = stub.answers.get(url.path, (404, b"no such page"))
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def stub() -> Iterator[Stub]:
    server = Stub()
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.server.shutdown()


def rest(stub: Stub, tmp_path: Path, retries: int = 0) -> ModelRegistry:
    settings = load_settings(
        {"state_dir": str(tmp_path), "mlflow": {"tracking_uri": stub.url, "request_retries": retries}}
    )
    return reading_registry(settings)


ALIAS = "/api/2.0/mlflow/registered-models/alias"
SEARCH = "/api/2.0/mlflow/registered-models/search"


def version_json(weights_uri: str) -> dict[str, Any]:
    tags = {"source": "reference", "weights_uri": weights_uri, "l_s": "250"}
    return {
        "model_version": {
            "name": "telemanom-P-1",
            "version": "3",
            "run_id": "abc",
            "current_stage": "None",
            "tags": [{"key": k, "value": v} for k, v in tags.items()],
            "aliases": ["reference", "champion"],
        }
    }


def test_rest_resolves_an_alias_and_downloads_served_weights(stub: Stub, tmp_path: Path, monkeypatch) -> None:
    weights = persistence_model("P-1", 25, seed=4)
    save_npz(weights, tmp_path / "weights.npz")
    stub.answers[ALIAS] = (200, version_json("mlflow-artifacts:/1/abc/artifacts/weights"))
    stub.answers["/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/weights/weights.npz"] = (
        200,
        (tmp_path / "weights.npz").read_bytes(),
    )
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "t0ken")
    reader = rest(stub, tmp_path / "state")
    info = reader.resolve("P-1")
    assert (info.version, info.run_id, info.source, info.aliases) == (
        "3",
        "abc",
        "reference",
        ("champion", "reference"),
    )
    assert stub.requests[0][1] == {"name": ["telemanom-P-1"], "alias": ["champion"]}
    assert stub.requests[0][2] == "Bearer t0ken"
    loaded = reader.load(info)
    assert np.array_equal(loaded.dense_kernel, weights.dense_kernel) and loaded.version == "3"
    reader.load(info)  # kept under weights-cache: not downloaded again
    assert len(stub.requests) == 2


def test_rest_lists_channels_across_pages(stub: Stub, tmp_path: Path) -> None:
    pages = iter([
        {"registered_models": [{"name": "telemanom-P-1"}, {"name": "other"}], "next_page_token": "p2"},
        {"registered_models": [{"name": "telemanom-A-1"}]},
    ])  # fmt: skip

    class Pages(dict[str, Any]):
        def get(self, key: str, default: Any = None) -> Any:
            return (200, next(pages)) if key == SEARCH else default

    stub.answers = Pages()
    assert rest(stub, tmp_path).channels() == ["A-1", "P-1"]
    assert "page_token" not in stub.requests[0][1] and stub.requests[1][1]["page_token"] == ["p2"]


@pytest.mark.parametrize(
    ("status", "code"), [(404, "RESOURCE_DOES_NOT_EXIST"), (400, "INVALID_PARAMETER_VALUE")]
)
def test_rest_only_a_missing_model_or_alias_is_not_found(stub: Stub, tmp_path: Path, status, code) -> None:
    stub.answers[ALIAS] = (status, {"error_code": code, "message": "not found"})
    with pytest.raises(ModelNotFound, match="channel P-1 has no model under alias 'champion'"):
        rest(stub, tmp_path, retries=2).resolve("P-1")
    assert len(stub.requests) == 1  # an answer, not retried


def test_rest_server_errors_are_retried_then_unavailable(stub: Stub, tmp_path: Path) -> None:
    stub.answers[ALIAS] = (503, {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "busy"})
    with pytest.raises(RegistryUnavailable, match="did not resolve channel P-1"):
        rest(stub, tmp_path, retries=1).resolve("P-1")
    assert len(stub.requests) == 2
    stub.answers[SEARCH] = (403, {"error_code": "PERMISSION_DENIED", "message": "no"})
    with pytest.raises(RegistryUnavailable, match="PERMISSION_DENIED"):
        rest(stub, tmp_path, retries=1).channels()
    assert len(stub.requests) == 3  # not an error MLflow's client retries


def test_rest_a_refused_connection_is_unavailable_within_seconds(tmp_path: Path) -> None:
    settings = load_settings(
        {"state_dir": str(tmp_path), "mlflow": {"tracking_uri": "http://127.0.0.1:9", "request_retries": 1}}
    )
    started = time.monotonic()
    with pytest.raises(RegistryUnavailable, match=r"127\.0\.0\.1:9"):
        reading_registry(settings).resolve("P-1")
    assert time.monotonic() - started < 10
