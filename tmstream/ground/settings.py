"""Typed settings: YAML defaults, an environment overlay, TMSTREAM_* variables, CLI flags.

Precedence, lowest first: default.yaml < <environment>.yaml < environment variables < CLI flags, each
a pydantic-settings source (``Settings.settings_customise_sources``). Nested keys map to variables
with one underscore after the section: ``kafka.bootstrap`` is ``TMSTREAM_KAFKA_BOOTSTRAP``,
``model.l_s`` is ``TMSTREAM_MODEL_L_S``. ``*_file`` settings (``kafka.password_file``) replace their
secret with a file's content. Relative paths are taken from the project folder (``resources``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from tmstream.ground.exceptions import ConfigError
from tmstream.ground.resources import config_dir as config_dir  # re-exported for the registry and benchmarks
from tmstream.ground.resources import project_dir, settings_files

PROJECT_ROOT = project_dir()  # the checkout (or the working directory): tests and benchmarks read from it
Environment = Literal["development", "testing", "production"]
ENVIRONMENTS = get_args(Environment)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _password_from_file(values: Any) -> Any:
    """``password_file`` (a mounted secret: Docker/Kubernetes style) replaces ``password``.

    Read once, at load time; a trailing newline is dropped. The path may be logged, the content never.
    """
    if isinstance(values, dict) and values.get("password_file"):
        path = Path(values["password_file"])
        try:
            values = {**values, "password": path.read_text().rstrip("\r\n")}
        except OSError as exc:
            raise ValueError(f"cannot read the password file {path}: {exc.strerror}") from None
    return values


class KafkaSettings(Section):
    bootstrap: str | None = None
    version: str = "3.9.1"
    port: int = Field(9092, ge=1, le=65535)
    controller_port: int = Field(9093, ge=1, le=65535)
    heap: str = "512m"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    ssl_cafile: Path | None = None
    local_sasl: bool = False
    topic_partitions: int = Field(1, ge=1)
    replication_factor: int = Field(1, ge=1)
    retention_ms: int = Field(604_800_000, ge=-1)
    telemetry_topic_pattern: str = r"telemetry\.[a-z0-9_]+\..+"
    anomalies_topic: str = "anomalies"
    deadletter_topic: str = "telemetry.deadletter"
    state_topic: str = "tmstream.worker-state"
    # compacted, keyed by channel id: the fleet's channel registry (docs/ONBOARDING.md)
    channels_topic: str = "tmstream.channels"
    # a challenger's events while it is scored beside the champion: never alerts nor work orders
    shadow_topic: str = "anomalies.shadow"
    # the client producers send with: confluent-kafka (librdkafka, the optional extra `confluent`)
    # is 6-15x kafka-python's points per second (docs/PERFORMANCE.md, "Producer")
    producer_client: Literal["kafka-python", "confluent-kafka"] = "kafka-python"
    # a direct read (snapshots, emissions, catch-up) that gets no record for this long fails
    # instead of holding the worker: the broker is away or the partition went
    read_stall_s: float = Field(60.0, gt=0)

    @field_validator("security_protocol", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    _password_file = model_validator(mode="before")(_password_from_file)

    @property
    def external(self) -> bool:
        return self.bootstrap is not None

    @property
    def bootstrap_servers(self) -> str:
        return self.bootstrap or f"127.0.0.1:{self.port}"

    def client_options(self) -> dict[str, Any]:
        """Security options in kafka-python's spelling, shared by producers, consumers and admin."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol.startswith("SASL"):
            options["sasl_mechanism"] = self.sasl_mechanism or "SCRAM-SHA-512"
            options["sasl_plain_username"] = self.username
            options["sasl_plain_password"] = self.password.get_secret_value() if self.password else None
        if self.security_protocol.endswith("SSL") and self.ssl_cafile is not None:
            options["ssl_cafile"] = str(self.ssl_cafile)
        return options


class RedisSettings(Section):
    url: str | None = None
    port: int = Field(6379, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    stream_maxlen: int = Field(100_000, ge=1)

    _password_file = model_validator(mode="before")(_password_from_file)

    @property
    def external(self) -> bool:
        return self.url is not None

    @property
    def effective_url(self) -> str:
        return self.url or f"redis://127.0.0.1:{self.port}/0"


class PrometheusSettings(Section):
    url: str | None = None
    port: int = Field(9090, ge=1, le=65535)
    scrape_interval: str = "5s"

    @property
    def external(self) -> bool:
        return self.url is not None

    @property
    def effective_url(self) -> str:
        return (self.url or f"http://127.0.0.1:{self.port}").rstrip("/")


class AlertmanagerSettings(Section):
    enabled: bool = True
    url: str | None = None
    port: int = Field(9094, ge=1, le=65535)

    @property
    def external(self) -> bool:
        return self.url is not None

    @property
    def effective_url(self) -> str:
        return (self.url or f"http://127.0.0.1:{self.port}").rstrip("/")


class MlflowSettings(Section):
    tracking_uri: str | None = None
    # MLflow's own HTTP defaults (7 retries, backoff factor 2, 120 s timeout) hold a query to a
    # stopped server for minutes; a worker asks again at its next batch or refresh instead
    request_retries: int = Field(2, ge=0)
    request_timeout_s: float = Field(10, gt=0)


class ModelSettings(Section):
    """Telemanom's LSTM and training parameters (KDD 2018 defaults)."""

    l_s: int = Field(250, ge=1)
    n_predictions: int = Field(10, ge=1)
    layers: list[int] = [80, 80]
    dropout: float = Field(0.3, ge=0, lt=1)
    loss: Literal["mse", "mae"] = "mse"
    optimizer: Literal["adam", "rmsprop", "sgd"] = "adam"
    batch_size: int = Field(64, ge=1)
    epochs: int = Field(35, ge=1)
    patience: int = Field(10, ge=0)
    min_delta: float = Field(0.0003, ge=0)
    validation_split: float = Field(0.2, ge=0, lt=1)
    cache_max_models: int = Field(128, ge=1)
    cache_max_bytes: int = Field(268_435_456, ge=1)
    refresh_seconds: float = Field(30, gt=0)


class ThresholdSettings(Section):
    """Telemanom's nonparametric dynamic thresholding parameters."""

    batch_size: int = Field(70, ge=1)
    window_size: int = Field(30, ge=1)
    smoothing_perc: float = Field(0.05, gt=0, le=1)
    error_buffer: int = Field(100, ge=0)
    p: float = Field(0.13, ge=0, le=1)


class WorkerSettings(Section):
    """The Faust scoring worker: web endpoints, micro-batching, state snapshots, idle close."""

    group: str = "tmstream-worker"
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(6066, ge=1, le=65535)
    max_batch: int = Field(1024, ge=1)
    max_wait_ms: int = Field(50, ge=0)
    snapshot_every: int = Field(350, ge=1)
    idle_close_s: float = Field(20, gt=0)
    topic_refresh_s: float = Field(5, gt=0)
    # hybrid: one LSTM step per point for versions measured exact that way, windows for the rest;
    # windowed: windows for every channel; approximate: one step per point everywhere, unchecked
    inference_policy: Literal["hybrid", "windowed", "approximate"] = "hybrid"
    verify_every: int = Field(250, ge=1)  # the online guard's period, in rows
    stateful_tolerance: float = Field(1e-5, gt=0)


class WorkOrderSettings(Section):
    """Maintenance work orders: their consumer group on the anomalies topic, due-time policy, API."""

    group: str = "tmstream-workorders"
    api_host: str = "127.0.0.1"
    api_port: int = Field(6070, ge=1, le=65535)
    due_hours: dict[Literal["P1", "P2", "P3"], float] = {"P1": 4.0, "P2": 24.0, "P3": 72.0}

    @field_validator("due_hours")
    @classmethod
    def _every_priority(cls, value: dict[str, float]) -> dict[str, float]:
        missing = {"P1", "P2", "P3"} - set(value)
        if missing or any(hours <= 0 for hours in value.values()):
            raise ValueError(f"needs positive hours for P1, P2 and P3 (missing {sorted(missing)})")
        return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TMSTREAM_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="forbid",
        validate_assignment=True,
    )

    environment: Environment = "development"
    state_dir: Path = Path(".stack")
    data_dir: Path = Path("../shared/nasa")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    kafka: KafkaSettings = KafkaSettings()
    redis: RedisSettings = RedisSettings()
    prometheus: PrometheusSettings = PrometheusSettings()
    alertmanager: AlertmanagerSettings = AlertmanagerSettings()
    mlflow: MlflowSettings = MlflowSettings()
    model: ModelSettings = ModelSettings()
    threshold: ThresholdSettings = ThresholdSettings()
    worker: WorkerSettings = WorkerSettings()
    workorders: WorkOrderSettings = WorkOrderSettings()

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("state_dir", "data_dir", mode="after")
    @classmethod
    def _resolve(cls, value: Path) -> Path:
        return value if value.is_absolute() else (project_dir() / value).resolve()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Highest first: CLI flags (init), TMSTREAM_* variables, then the YAML layers."""
        return (init_settings, env_settings, YamlLayers(settings_cls))


class YamlLayers(PydanticBaseSettingsSource):
    """``default.yaml`` with ``<environment>.yaml`` merged over it, key by key.

    The environment is the one the sources above chose (a flag, then ``TMSTREAM_ENVIRONMENT``), else
    default.yaml's own ``environment``; it must be known before its overlay is read.
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # the files are read whole, in __call__

    def __call__(self) -> dict[str, Any]:
        folder = settings_files()
        default_file = folder / "default.yaml"
        if not default_file.is_file():
            raise ConfigError(f"config file {default_file} not found (set TMSTREAM_CONFIG_DIR)")
        values = _read_yaml(default_file)
        environment = self.current_state.get("environment") or values.get("environment", "development")
        if environment not in ENVIRONMENTS:
            allowed = f"allowed values are {ENVIRONMENTS}"
            raise ConfigError(f"invalid setting environment={environment!r}: {allowed}")
        overlay_file = folder / f"{environment}.yaml"
        if overlay_file.is_file():
            values = _deep_merge(values, _read_yaml(overlay_file))
        return {**values, "environment": environment}


def _deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {_one_line(exc)}") from exc
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping, found {type(loaded).__name__}")
    return loaded


def _one_line(error: yaml.YAMLError) -> str:
    """PyYAML's message spans lines (context, the offending line, a caret); keep problem and place."""
    problem = getattr(error, "problem", None)
    mark = getattr(error, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(error).split())


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"])
    value = first.get("input")
    if isinstance(value, dict) or "password" in key:  # a whole section may hold a password: never echo it
        return f"invalid setting {key}: {first['msg']}"
    return f"invalid setting {key}={value!r}: {first['msg']}"


def load_settings(overrides: dict[str, Any] | None = None) -> Settings:
    """The settings for one command: ``overrides`` are its CLI flags, as nested dicts.

    Every rule a value breaks surfaces as one ``ConfigError`` line naming the key, the value (never a
    secret's) and what is allowed.
    """
    try:
        return Settings(**(overrides or {}))
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from exc
