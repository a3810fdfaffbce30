"""The worker's registry reads without the MLflow client: MLflow's SQLite file through ``sqlite3``,
a tracking server through its REST API.

Why: importing MLflow costs a worker ≈150 MB of RSS and over a second of start-up (``mlflow``'s
``__init__`` pulls in pandas, pyarrow, FastAPI and its GenAI modules; a SQLite registry adds
SQLAlchemy and alembic), and the worker only resolves aliases and reads npz files
(docs/PERFORMANCE.md, "Memory"). The MLflow registry stays the source of truth: these classes
read what MLflow wrote, and every write (``register_weights``, ``promote`` …) still goes through
``ModelRegistry``'s MlflowClient. A URI of another kind (Databricks, a SQL server) or a server
that needs MLflow's TLS or auth plug-ins keeps the MlflowClient (``reading_registry``).
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from model_store.exceptions import ModelNotFound, RegistryUnavailable
from model_store.registry import (
    NOT_FOUND_CODES,
    WEIGHTS_DIR,
    WEIGHTS_FILE,
    ModelRegistry,
    ModelVersionInfo,
    model_name,
    tracking_uri,
)
from model_store.weights import LstmWeights
from tmstream.ground.retries import Backoff, retrying
from tmstream.ground.settings import Settings

T = TypeVar("T")
PREFIX = model_name("")
# MLflow's SQL store marks a deleted version so instead of deleting its row
DELETED_STAGE = "Deleted_Internal"
# MLflow client settings this REST reader does not implement: with any of them set, the worker
# keeps the MlflowClient
MLFLOW_ONLY_ENV = (
    "MLFLOW_TRACKING_INSECURE_TLS",
    "MLFLOW_TRACKING_SERVER_CERT_PATH",
    "MLFLOW_TRACKING_CLIENT_CERT_PATH",
    "MLFLOW_TRACKING_AUTH",
    "MLFLOW_TRACKING_AWS_SIGV4",
)
# what MLflow's own HTTP client retries (besides refused and dropped connections)
RETRIED_STATUS = frozenset({429, 500, 502, 503, 504})


def reading_registry(settings: Settings) -> ModelRegistry:
    """The registry a worker reads through: the lightest one that can read ``settings``' URI."""
    uri = tracking_uri(settings)
    if uri.startswith("sqlite:///"):
        return SqliteRegistry(settings)
    if urlparse(uri).scheme in ("http", "https") and not any(os.environ.get(n) for n in MLFLOW_ONLY_ENV):
        return RestRegistry(settings)
    return ModelRegistry(settings)


# MLflow's single-tenant workspace (mlflow.utils.workspace_utils.DEFAULT_WORKSPACE_NAME; not
# imported: importing MLflow is what this reader avoids)
DEFAULT_WORKSPACE = "default"


class SqliteRegistry(ModelRegistry):
    """Reads of a SQLite-backed registry, in MLflow's tables (read-only, one snapshot per call).

    Only columns MLflow's registry has had since aliases came (2.3) are read; a workspace other
    than the default one does not exist in MLflow's single-tenant mode, which tmstream uses. A
    missing file is an empty registry, as MLflow (which would create it) answers; a locked or
    unreadable one is a registry that did not answer.
    """

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.path = Path(self.uri.removeprefix("sqlite:///"))
        self.timeout_s = settings.mlflow.request_timeout_s
        self._workspaces: bool | None = None

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection | None]:
        """A read transaction on the file, or None while there is no file."""
        if not self.path.is_file():
            yield None
            return
        target = f"{self.path.resolve().as_uri()}?mode=ro"
        try:
            with closing(
                sqlite3.connect(target, uri=True, timeout=self.timeout_s, isolation_level=None)
            ) as db:
                db.execute("BEGIN")  # the queries of one call see one state of the file
                yield db
        except sqlite3.Error as exc:
            raise RegistryUnavailable(f"cannot read the MLflow registry at {self.uri}: {exc}") from exc

    def _has_workspaces(self, db: sqlite3.Connection) -> bool:
        """Whether the file's tables carry MLflow 3's ``workspace`` column (asked once per reader)."""
        if self._workspaces is None:
            columns = {row[1] for row in db.execute("PRAGMA table_info(model_version_tags)")}
            self._workspaces = "workspace" in columns
        return self._workspaces

    def channels(self) -> list[str]:
        with self._snapshot() as db:
            names = (
                [] if db is None else [name for (name,) in db.execute("SELECT name FROM registered_models")]
            )
        return sorted(name.removeprefix(PREFIX) for name in names if name.startswith(PREFIX))

    def resolve(self, channel: str, alias: str = "champion") -> ModelVersionInfo:
        name = model_name(channel)
        with self._snapshot() as db:
            found = None
            if db is not None:
                # MLflow 3 keys these tables by (workspace, name, …): without the workspace a query
                # scans them (25 ms per resolve at 10,000 models; 0.02 ms with it)
                space = "workspace = ? AND " if self._has_workspaces(db) else ""
                scope: tuple[str, ...] = (DEFAULT_WORKSPACE,) if space else ()
                found = db.execute(
                    "SELECT v.version, v.run_id FROM registered_model_aliases a JOIN model_versions v"
                    " ON v.name = a.name AND v.version = a.version"
                    + (" AND v.workspace = a.workspace" if space else "")
                    + f" WHERE {'a.' + space if space else ''}a.name = ? AND a.alias = ?"
                    " AND v.current_stage IS NOT ?",
                    (*scope, name, alias, DELETED_STAGE),
                ).fetchone()
            if db is None or found is None:
                raise ModelNotFound(f"channel {channel} has no model under alias {alias!r} in {self.uri}")
            version, run_id = found
            where = (*scope, name, version)
            rows = db.execute(
                f"SELECT alias FROM registered_model_aliases WHERE {space}name = ? AND version = ?", where
            )
            aliases = sorted(alias for (alias,) in rows)
            tags = dict(
                db.execute(
                    f"SELECT key, value FROM model_version_tags WHERE {space}name = ? AND version = ?", where
                )
            )
        return ModelVersionInfo(
            channel=channel,
            version=str(version),
            aliases=tuple(aliases),
            source=tags.get("source", "unknown"),
            run_id=run_id,
            tags=tags,
        )


class RestRegistry(ModelRegistry):
    """Reads of an MLflow tracking server through its REST API (``/api/2.0/mlflow``), with the
    retries and timeout of ``settings.mlflow`` and MLflow's basic or bearer credentials
    (``MLFLOW_TRACKING_USERNAME``/``_PASSWORD``, ``MLFLOW_TRACKING_TOKEN``).

    As for the MlflowClient, only "no such model or alias" is ``ModelNotFound``; a refused
    connection, a timeout or any other error is ``RegistryUnavailable``. Weights the server
    serves (``mlflow-artifacts:`` URIs, ``mlflow server --serve-artifacts``) are downloaded
    through its artifact API into the same ``weights-cache`` folder ``ModelRegistry`` uses.
    """

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.base = self.uri.rstrip("/")
        mlflow = settings.mlflow
        self.timeout_s = mlflow.request_timeout_s
        self.backoff = Backoff(first_s=0.5, cap_s=4.0, attempts=mlflow.request_retries + 1)
        self.headers = _credentials()

    def channels(self) -> list[str]:
        names: list[str] = []
        page: str | None = ""
        while page is not None:
            query = {"filter": f"name LIKE '{PREFIX}%'", "max_results": "1000"}
            try:
                found = self._get_json(
                    "registered-models/search", {**query, **({"page_token": page} if page else {})}
                )
            except _NotFound as exc:  # no registry behind this address
                raise RegistryUnavailable(
                    f"the MLflow registry at {self.uri} did not list models: {exc}"
                ) from exc
            names += [model["name"] for model in found.get("registered_models", [])]
            page = found.get("next_page_token") or None
        return sorted(name.removeprefix(PREFIX) for name in names if name.startswith(PREFIX))

    def resolve(self, channel: str, alias: str = "champion") -> ModelVersionInfo:
        try:
            found = self._get_json("registered-models/alias", {"name": model_name(channel), "alias": alias})
        except _NotFound as exc:
            raise ModelNotFound(
                f"channel {channel} has no model under alias {alias!r} in {self.uri}: {exc}"
            ) from exc
        except RegistryUnavailable as exc:
            raise RegistryUnavailable(
                f"the MLflow registry at {self.uri} did not resolve channel {channel} ({alias}): {exc}"
            ) from exc
        version = found["model_version"]
        tags = {tag["key"]: tag["value"] for tag in version.get("tags", [])}
        return ModelVersionInfo(
            channel=channel,
            version=str(version["version"]),
            aliases=tuple(sorted(version.get("aliases", []))),
            source=tags.get("source", "unknown"),
            run_id=version.get("run_id"),
            tags=tags,
        )

    def load(self, info: ModelVersionInfo) -> LstmWeights:
        uri = info.tags.get("weights_uri", "")
        parsed = urlparse(uri)
        if parsed.scheme == "mlflow-artifacts":
            # where ModelRegistry._weights_path looks for a downloaded version before asking MLflow
            path = self.download_dir / info.channel / info.version / WEIGHTS_DIR / WEIGHTS_FILE
            if not path.is_file():
                base = f"{urlparse(self.base).scheme}://{parsed.netloc}" if parsed.netloc else self.base
                remote = f"{parsed.path.strip('/')}/{WEIGHTS_FILE}"
                url = f"{base}/api/2.0/mlflow-artifacts/artifacts/{urllib.parse.quote(remote)}"
                try:
                    self._retried(lambda: _download(url, path, self.headers, self.timeout_s))
                except (_NotFound, RegistryUnavailable) as exc:
                    raise RegistryUnavailable(
                        f"channel {info.channel} version {info.version}: cannot download {uri}: {exc}"
                    ) from exc
        return super().load(info)

    def _get_json(self, endpoint: str, query: dict[str, str]) -> dict[str, Any]:
        url = f"{self.base}/api/2.0/mlflow/{endpoint}?{urllib.parse.urlencode(query)}"
        request = urllib.request.Request(url, headers=self.headers)

        def get() -> dict[str, Any]:
            with _answer(url), urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return dict(json.load(response))

        return self._retried(get)

    def _retried(self, call: Callable[[], T]) -> T:
        return retrying((_Transient,), self.backoff)(call)


class _NotFound(Exception):
    """The server answered that the model, alias or file does not exist."""


class _Transient(RegistryUnavailable):
    """No answer, or one MLflow's own client retries (429, 5xx)."""


@contextmanager
def _answer(url: str) -> Iterator[None]:
    """MLflow's error replies as ``_NotFound`` / ``_Transient`` / ``RegistryUnavailable``."""
    try:
        yield
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            code = json.loads(body).get("error_code")
        except (ValueError, AttributeError):
            code = None
        detail = f"HTTP {exc.code} {code or ''} from {url}: {body[:200]!r}"
        if code in NOT_FOUND_CODES or (exc.code == 404 and code is None):
            raise _NotFound(detail) from exc
        raise (_Transient if exc.code in RETRIED_STATUS else RegistryUnavailable)(detail) from exc
    except (OSError, ValueError) as exc:  # refused, reset, timed out (URLError is an OSError); bad JSON
        raise _Transient(f"no answer from {url}: {exc}") from exc


def _download(url: str, path: Path, headers: dict[str, str], timeout_s: float) -> None:
    """The file at ``url`` to ``path``, whole or not at all (a worker beside this one may read it);
    in memory on the way, as the weights are loaded whole anyway."""
    request = urllib.request.Request(url, headers=headers)
    with _answer(url), urllib.request.urlopen(request, timeout=timeout_s) as response:
        content = response.read()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as part:
        part.write(content)
    os.replace(part.name, path)


def _credentials() -> dict[str, str]:
    """The Authorization header MLflow's client would send, from the same variables."""
    if token := os.environ.get("MLFLOW_TRACKING_TOKEN"):
        return {"Authorization": f"Bearer {token}"}
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
    return {}
