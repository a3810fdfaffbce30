"""The MLflow model registry: one registered model per channel, aliases instead of stages.

Every version carries its weights as ``weights/weights.npz`` in its run's artifacts (tag
``weights_uri``), so the worker loads models with NumPy alone; trained versions also hold the
Keras model logged with a signature. Local SQLite under ``<state_dir>/mlflow`` unless
``settings.mlflow.tracking_uri`` or ``MLFLOW_TRACKING_URI`` says otherwise.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np

from model_store.exceptions import ModelNotFound, RegistryError, RegistryUnavailable, WeightsError
from model_store.inference_mode import ModeVerdict
from model_store.weights import LstmWeights, load_npz, save_npz
from tmstream.ground.settings import Settings

EXPERIMENT = "tmstream"
ALIASES = ("champion", "reference", "challenger")
WEIGHTS_DIR = "weights"
WEIGHTS_FILE = "weights.npz"


# what MLflow answers for a model or alias it lacks; any other failure (INTERNAL_ERROR for a refused
# connection, TEMPORARILY_UNAVAILABLE, …) means it did not answer, which is not "no model"
NOT_FOUND_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})


def model_name(channel: str) -> str:
    return f"telemanom-{channel}"


def tracking_uri(settings: Settings) -> str:
    configured = settings.mlflow.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if configured:
        return configured
    return f"sqlite:///{settings.state_dir / 'mlflow' / 'mlflow.db'}"


FLUENT_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@contextmanager
def fluent_tracking(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API (``mlflow.start_run`` …) at ``uri`` for one block only.

    ``mlflow.set_tracking_uri`` also exports MLFLOW_TRACKING_URI, which every child process would
    inherit (a worker started later would then read another registry); the variables are restored.
    """
    import mlflow

    saved = {name: os.environ.get(name) for name in FLUENT_ENV}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass(frozen=True)
class ModelVersionInfo:
    """One registered version as the CLI and the cache see it."""

    channel: str
    version: str
    aliases: tuple[str, ...]
    source: str
    run_id: str | None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, float]:
        return {
            key.removeprefix("metric."): float(value)
            for key, value in self.tags.items()
            if key.startswith("metric.")
        }


@dataclass(frozen=True)
class ImportResult:
    channel: str
    version: str
    created: bool
    aliases: tuple[str, ...]


def _quiet_mlflow() -> None:
    for name in ("alembic", "mlflow", "mlflow.store.db.utils", "mlflow.tracking"):
        logging.getLogger(name).setLevel(logging.WARNING)


class ModelRegistry:
    """Register, resolve, promote and load Telemanom models; safe to share between threads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.uri = tracking_uri(settings)
        self.artifact_root = settings.state_dir / "mlflow" / "artifacts"
        self.download_dir = settings.state_dir / "mlflow" / "weights-cache"
        self._lock = threading.Lock()
        self._client: Any = None
        self._experiment_id: str | None = None
        self._local_paths: dict[tuple[str, str], Path] = {}

    @property
    def client(self) -> Any:
        """The MlflowClient, created on first use (importing MLflow and migrating SQLite is slow)."""
        with self._lock:
            if self._client is None:
                _quiet_mlflow()
                from mlflow.tracking import MlflowClient

                if self.uri.startswith("sqlite:///"):
                    Path(self.uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
                # MLflow reads these at each request; an explicit environment variable wins
                mlflow_settings = self.settings.mlflow
                os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(mlflow_settings.request_retries))
                os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", f"{mlflow_settings.request_timeout_s:g}")
                try:
                    self._client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
                    self._client.search_experiments(max_results=1)
                except Exception as exc:
                    self._client = None
                    detail = f"cannot open the MLflow registry at {self.uri}: {exc}"
                    raise RegistryUnavailable(detail) from exc
            return self._client

    def experiment_id(self) -> str:
        if self._experiment_id is None:
            found = self.client.get_experiment_by_name(EXPERIMENT)
            if found is not None:
                self._experiment_id = found.experiment_id
            else:
                self.artifact_root.mkdir(parents=True, exist_ok=True)
                self._experiment_id = self.client.create_experiment(
                    EXPERIMENT, artifact_location=self.artifact_root.resolve().as_uri()
                )
        return str(self._experiment_id)

    def ensure_registered_model(self, channel: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(model_name(channel))
        except MlflowException:
            self.client.create_registered_model(
                model_name(channel), tags={"channel": channel}, description=f"Telemanom LSTM for {channel}"
            )

    def versions(self, channel: str) -> list[ModelVersionInfo]:
        """All versions of a channel's model, oldest first (empty when none is registered)."""
        from mlflow.exceptions import MlflowException

        try:
            registered = self.client.get_registered_model(model_name(channel))
        except MlflowException:
            return []
        aliases_of: dict[str, list[str]] = {}
        for alias, version in (registered.aliases or {}).items():
            aliases_of.setdefault(str(version), []).append(alias)
        found = self.client.search_model_versions(f"name='{model_name(channel)}'")
        infos = [
            ModelVersionInfo(
                channel=channel,
                version=str(v.version),
                aliases=tuple(sorted(aliases_of.get(str(v.version), []))),
                source=v.tags.get("source", "unknown"),
                run_id=v.run_id,
                tags=dict(v.tags),
            )
            for v in found
        ]
        return sorted(infos, key=lambda info: int(info.version))

    def channels(self) -> list[str]:
        found = self.client.search_registered_models(filter_string="name LIKE 'telemanom-%'")
        return sorted(m.name.removeprefix("telemanom-") for m in found)

    def list_models(self) -> list[ModelVersionInfo]:
        return [info for channel in self.channels() for info in self.versions(channel)]

    def log_weights(self, run_id: str, weights: LstmWeights) -> str:
        """Store the npz in a run's artifacts; returns the folder URI the worker loads from."""
        with tempfile.TemporaryDirectory() as scratch:
            save_npz(weights, Path(scratch) / WEIGHTS_FILE)
            self.client.log_artifact(run_id, str(Path(scratch) / WEIGHTS_FILE), WEIGHTS_DIR)
        return f"{self.client.get_run(run_id).info.artifact_uri}/{WEIGHTS_DIR}"

    def register_weights(
        self,
        weights: LstmWeights,
        *,
        aliases: Iterable[str] = (),
        params: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
    ) -> ModelVersionInfo:
        """A new run holding the weights, registered as a new version of the channel's model."""
        self.ensure_registered_model(weights.channel)
        run = self.client.create_run(
            self.experiment_id(),
            run_name=f"{weights.source}-{weights.channel}",
            tags={"channel": weights.channel, "source": weights.source},
        )
        run_id = run.info.run_id
        for key, value in (params or {}).items():
            self.client.log_param(run_id, key, value)
        weights_uri = self.log_weights(run_id, weights)
        self.client.set_terminated(run_id)
        created = self.client.create_model_version(
            model_name(weights.channel),
            weights_uri,
            run_id=run_id,
            tags=_version_tags(weights, weights_uri, tags),
        )
        for alias in aliases:
            self.promote(weights.channel, str(created.version), alias)
        return self.version_info(weights.channel, str(created.version))

    def describe_version(
        self,
        weights: LstmWeights,
        version: str,
        weights_uri: str,
        *,
        aliases: Iterable[str] = (),
        tags: dict[str, str] | None = None,
    ) -> ModelVersionInfo:
        """Tag a version registered elsewhere (a logged Keras model) with its engine weights."""
        for key, value in _version_tags(weights, weights_uri, tags).items():
            self.client.set_model_version_tag(model_name(weights.channel), version, key, value)
        for alias in aliases:
            self.promote(weights.channel, version, alias)
        return self.version_info(weights.channel, version)

    def version_info(self, channel: str, version: str) -> ModelVersionInfo:
        for info in self.versions(channel):
            if info.version == str(version):
                return info
        raise ModelNotFound(f"channel {channel} has no model version {version}")

    def promote(self, channel: str, version: str, alias: str = "champion") -> ModelVersionInfo:
        if alias not in ALIASES:
            raise RegistryError(f"unknown alias {alias!r}; expected one of {', '.join(ALIASES)}")
        info = self.version_info(channel, str(version))
        self.client.set_registered_model_alias(model_name(channel), alias, info.version)
        return self.version_info(channel, info.version)

    def resolve(self, channel: str, alias: str = "champion") -> ModelVersionInfo:
        """The version an alias points to now (one registry query)."""
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.get_model_version_by_alias(model_name(channel), alias)
        except MlflowException as exc:
            if exc.error_code in NOT_FOUND_CODES:
                raise ModelNotFound(
                    f"channel {channel} has no model under alias {alias!r} in {self.uri}"
                ) from exc
            raise RegistryUnavailable(
                f"the MLflow registry at {self.uri} did not resolve channel {channel} ({alias}): {exc}"
            ) from exc
        return ModelVersionInfo(
            channel=channel,
            version=str(found.version),
            aliases=tuple(found.aliases or ()),
            source=found.tags.get("source", "unknown"),
            run_id=found.run_id,
            tags=dict(found.tags),
        )

    def load(self, info: ModelVersionInfo) -> LstmWeights:
        """The weights of one resolved version, without TensorFlow."""
        path = self._weights_path(info)
        weights = load_npz(path, channel=info.channel, version=info.version)
        verdict = ModeVerdict.from_tags(info.tags)
        return weights.with_version(info.version, source=info.source, verdict=verdict)

    def load_alias(self, channel: str, alias: str = "champion") -> LstmWeights:
        return self.load(self.resolve(channel, alias))

    def _weights_path(self, info: ModelVersionInfo) -> Path:
        """The local path of a version's npz: the artifact store itself when it is local,
        otherwise a download kept under ``weights-cache`` (versions are immutable)."""
        key = (info.channel, info.version)
        if key in self._local_paths:
            return self._local_paths[key]
        uri = info.tags.get("weights_uri")
        if not uri:
            raise ModelNotFound(f"channel {info.channel} version {info.version} has no weights_uri tag")
        parsed = urlparse(uri)
        if parsed.scheme in ("", "file"):
            path = Path(unquote(parsed.path)) / WEIGHTS_FILE
        else:
            import mlflow.artifacts

            target = self.download_dir / info.channel / info.version
            path = target / WEIGHTS_DIR / WEIGHTS_FILE
            if not path.is_file():
                target.mkdir(parents=True, exist_ok=True)
                try:
                    mlflow.artifacts.download_artifacts(
                        artifact_uri=uri, dst_path=str(target), tracking_uri=self.uri
                    )
                except Exception as exc:  # MlflowException, OSError, requests' errors
                    raise RegistryUnavailable(
                        f"channel {info.channel} version {info.version}: cannot download {uri}: {exc}"
                    ) from exc
                path = next(target.rglob(WEIGHTS_FILE))
        if not path.is_file():
            raise WeightsError(
                f"channel {info.channel} version {info.version}: weights file {path} is missing"
            )
        self._local_paths[key] = path
        return path

    def record_mode(self, channel: str, version: str, verdict: ModeVerdict) -> ModelVersionInfo:
        """Store a version's inference-mode verdict as its tags (workers read it at load)."""
        for key, value in verdict.tags().items():
            self.client.set_model_version_tag(model_name(channel), str(version), key, value)
        return self.version_info(channel, str(version))

    def verify_mode(self, info: ModelVersionInfo, train_rows: np.ndarray) -> ModeVerdict:
        """Measure a version's inference mode on its channel's train split and record it."""
        from model_store.engine import InferenceEngine
        from model_store.mode_measurement import measure_mode

        engine = InferenceEngine()
        try:
            verdict = measure_mode(engine, self.load(info), train_rows)
        finally:
            engine.close()
        self.record_mode(info.channel, info.version, verdict)
        return verdict

    def import_reference(
        self,
        folder: Path,
        channels: Iterable[str] | None = None,
        on_progress: Callable[[ImportResult], None] | None = None,
        train_rows: Callable[[str], np.ndarray] | None = None,
    ) -> list[ImportResult]:
        """Register the 2018 models under ``reference`` (and ``champion`` where none is set).

        Idempotent: a file whose weights hash equals an existing version's is not registered
        again; its aliases are still ensured. With ``train_rows`` (a channel's train split), each
        version without an inference-mode verdict gets one (``verify_mode``).
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise RegistryError(f"reference model folder {folder} does not exist")
        wanted = sorted(channels) if channels else sorted(p.stem for p in folder.glob("*.h5"))
        if not wanted:
            raise RegistryError(f"reference model folder {folder} holds no .h5 files")
        results = []
        for channel in wanted:
            path = folder / f"{channel}.h5"
            if not path.is_file():
                raise RegistryError(f"channel {channel}: no reference model file {path}")
            from model_store.keras2_h5 import read_keras2_h5  # h5py only where 2018 files are read

            weights = read_keras2_h5(path, channel=channel)
            digest = weights.content_hash()
            existing = self.versions(channel)
            match = next((v for v in existing if v.tags.get("content_sha256") == digest), None)
            created = match is None
            if match is None:
                match = self.register_weights(
                    weights,
                    params={"file": str(path), "channel": channel},
                    tags={"reference_file": path.name},
                )
            aliases = ["reference"]
            if not any("champion" in v.aliases for v in existing):
                aliases.append("champion")
            for alias in aliases:
                if alias not in match.aliases:
                    self.promote(channel, match.version, alias)
            if train_rows is not None and ModeVerdict.from_tags(match.tags) is None:
                self.verify_mode(match, train_rows(channel))
            result = ImportResult(channel, match.version, created, tuple(sorted(aliases)))
            results.append(result)
            if on_progress is not None:
                on_progress(result)
        return results


def _version_tags(weights: LstmWeights, weights_uri: str, extra: dict[str, str] | None) -> dict[str, str]:
    return {
        "channel": weights.channel,
        "source": weights.source,
        "content_sha256": weights.content_hash(),
        "recurrent_activation": weights.recurrent_activation,
        "features": str(weights.n_features),
        "l_s": str(weights.l_s),
        "weights_uri": weights_uri,
        **(extra or {}),
    }
