"""Settings precedence (YAML < overlay < environment < flags) and clear errors for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from tmstream.ground import resources
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


def test_environment_flag_outranks_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMSTREAM_ENVIRONMENT", "testing")
    settings = load_settings({"environment": "development"})
    assert settings.environment == "development" and settings.kafka.port == 9092


def test_default_yaml_names_the_environment_when_nothing_else_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "default.yaml").write_text("environment: testing\nkafka: {port: 1111, heap: 1g}\n")
    (tmp_path / "testing.yaml").write_text("kafka: {port: 2222}\n")
    monkeypatch.setenv("TMSTREAM_CONFIG_DIR", str(tmp_path))
    monkeypatch.delenv("TMSTREAM_ENVIRONMENT", raising=False)
    settings = load_settings()
    assert settings.environment == "testing"
    assert (settings.kafka.port, settings.kafka.heap) == (2222, "1g")  # the overlay merges key by key


def test_unknown_environment_from_the_variable_lists_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMSTREAM_ENVIRONMENT", "staging")
    with pytest.raises(ConfigError, match=r"environment='staging'.*development.*testing.*production"):
        load_settings()


def test_a_config_dir_without_default_yaml_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMSTREAM_CONFIG_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match=r"default\.yaml not found \(set TMSTREAM_CONFIG_DIR\)"):
        load_settings()


def test_yaml_must_hold_a_mapping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "default.yaml").write_text("- kafka\n- redis\n")
    monkeypatch.setenv("TMSTREAM_CONFIG_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match=r"default\.yaml must hold a mapping, found list"):
        load_settings()


def test_broken_yaml_is_one_line_with_its_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "default.yaml").write_text("kafka:\n  port: [9092\n")
    monkeypatch.setenv("TMSTREAM_CONFIG_DIR", str(tmp_path))
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert "\n" not in str(raised.value) and "line 3" in str(raised.value)


def test_a_bad_overlay_value_names_key_and_allowed_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "default.yaml").write_text("log_level: INFO\n")
    (tmp_path / "production.yaml").write_text("log_level: loud\n")
    monkeypatch.setenv("TMSTREAM_CONFIG_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match=r"log_level='LOUD'.*'DEBUG', 'INFO', 'WARNING' or 'ERROR'"):
        load_settings({"environment": "production"})
    monkeypatch.setenv("TMSTREAM_LOG_LEVEL", "debug")  # the variable outranks the overlay's bad value
    assert load_settings({"environment": "production"}).log_level == "DEBUG"


def test_relative_paths_come_from_the_checkout() -> None:
    settings = load_settings({"state_dir": "some/state", "data_dir": "../elsewhere"})
    assert settings.state_dir == PROJECT_ROOT / "some" / "state"
    assert settings.data_dir == PROJECT_ROOT.parent / "elsewhere"


def test_without_a_checkout_paths_come_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wheel install: packaged defaults, writable things under the working directory."""
    monkeypatch.setattr(resources, "source_checkout", lambda: None)
    monkeypatch.delenv("TMSTREAM_CONFIG_DIR", raising=False)
    monkeypatch.delenv("TMSTREAM_DATA_DIR", raising=False)  # the default is what is checked
    monkeypatch.chdir(tmp_path)
    assert resources.config_dir() == tmp_path / "config"
    assert resources.settings_files() == resources.packaged("config")
    settings = load_settings({"environment": "development"})
    assert settings.state_dir == tmp_path / ".stack"
    assert settings.data_dir == (tmp_path / "../shared/nasa").resolve()
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "default.yaml").write_text("state_dir: my-state\n")
    assert resources.settings_files() == tmp_path / "config"  # a config/default.yaml of one's own wins
    assert load_settings().state_dir == tmp_path / "my-state"


def test_the_editable_install_reads_the_checkouts_folders() -> None:
    assert resources.source_checkout() == PROJECT_ROOT
    assert resources.packaged("config") == PROJECT_ROOT / "config"
    assert resources.packaged("prometheus") == PROJECT_ROOT / "deploy" / "prometheus" / "rules"
    assert resources.config_dir() == PROJECT_ROOT / "config"
