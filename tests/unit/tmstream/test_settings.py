"""Settings precedence (YAML < overlay < environment < flags) and clear errors for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from tmstream.ground.exceptions import ConfigError
from tmstream.ground.settings import PROJECT_ROOT, load_settings


def test_defaults_are_telemanoms_parameters() -> None:
    settings = load_settings({"environment": "development"})
    assert (settings.model.l_s, settings.model.n_predictions, settings.model.layers) == (250, 10, [80, 80])
    assert (settings.threshold.batch_size, settings.threshold.window_size) == (70, 30)
    assert settings.threshold.error_buffer == 100 and settings.threshold.p == pytest.approx(0.13)
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"


def test_overlay_then_environment_then_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMSTREAM_ENVIRONMENT", "testing")
    settings = load_settings()
    assert settings.kafka.port == 19092  # testing.yaml
    assert settings.state_dir == (PROJECT_ROOT / ".stack" / "testing").resolve()
    monkeypatch.setenv("TMSTREAM_KAFKA_PORT", "29092")
    monkeypatch.setenv("TMSTREAM_MODEL_L_S", "120")
    settings = load_settings()
    assert settings.kafka.port == 29092 and settings.model.l_s == 120
    assert settings.kafka.controller_port == 19093  # untouched keys keep the overlay's value
    settings = load_settings({"kafka": {"port": 39092}})
    assert settings.kafka.port == 39092 and settings.model.l_s == 120


def test_external_endpoints_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMSTREAM_KAFKA_BOOTSTRAP", "broker-1:9092,broker-2:9092")
    monkeypatch.setenv("TMSTREAM_REDIS_URL", "redis://cache:6379/2")
    monkeypatch.setenv("TMSTREAM_DATA_DIR", "/srv/telemetry")
    settings = load_settings()
    assert settings.kafka.external and settings.kafka.bootstrap_servers == "broker-1:9092,broker-2:9092"
    assert settings.redis.effective_url == "redis://cache:6379/2"
    assert settings.data_dir == Path("/srv/telemetry")


def test_invalid_value_names_key_and_allowed_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMSTREAM_KAFKA_SECURITY_PROTOCOL", "telnet")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    message = str(raised.value)
    assert "kafka.security_protocol" in message and "'TELNET'" in message
    assert "'SASL_SSL'" in message and "'PLAINTEXT'" in message


def test_unknown_environment_lists_allowed() -> None:
    with pytest.raises(ConfigError, match=r"environment='staging'.*development.*testing.*production"):
        load_settings({"environment": "staging"})


def test_secrets_never_print(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMSTREAM_KAFKA_PASSWORD", "hunter2-secret")
    settings = load_settings()
    assert "hunter2-secret" not in repr(settings) and "hunter2-secret" not in str(settings.model_dump())
    assert settings.kafka.password is not None
    assert settings.kafka.password.get_secret_value() == "hunter2-secret"


def test_broken_yaml_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "default.yaml").write_text("kafka: [unclosed\n")
    monkeypatch.setenv("TMSTREAM_CONFIG_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match=r"default\.yaml is not valid YAML"):
        load_settings()


def test_unknown_key_in_yaml_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "default.yaml").write_text("kafka:\n  bootstrapp: x:1\n")
    monkeypatch.setenv("TMSTREAM_CONFIG_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match=r"kafka\.bootstrapp"):
        load_settings()
