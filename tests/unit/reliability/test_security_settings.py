"""Security settings: secrets from files, never echoed; SASL/TLS reach every Kafka client."""

from __future__ import annotations

import ssl
from pathlib import Path

import faust
import pytest

from stream_workers.faust_config import faust_credentials
from tmstream.ground.exceptions import ConfigError, StackError
from tmstream.ground.settings import load_settings
from tmstream.stack.kafka import check_local_sasl, server_properties
from tmstream.stack.redis import RedisService

SASL = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512", "username": "tm"}


def test_password_files_replace_passwords(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "kafka").write_text("kafka-secret\n")
    (tmp_path / "redis").write_text("redis-secret")
    monkeypatch.setenv("TMSTREAM_KAFKA_PASSWORD_FILE", str(tmp_path / "kafka"))
    monkeypatch.setenv("TMSTREAM_REDIS_PASSWORD_FILE", str(tmp_path / "redis"))
    settings = load_settings()
    assert settings.kafka.password is not None and settings.redis.password is not None
    assert settings.kafka.password.get_secret_value() == "kafka-secret"
    assert settings.redis.password.get_secret_value() == "redis-secret"
    assert "kafka-secret" not in repr(settings) and "kafka-secret" not in str(settings.model_dump())


def test_a_bad_password_file_is_named_and_the_password_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMSTREAM_KAFKA_PASSWORD", "echo-me-not")
    monkeypatch.setenv("TMSTREAM_KAFKA_PASSWORD_FILE", "/nonexistent/kafka-password")
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert "/nonexistent/kafka-password" in str(error.value)
    assert "echo-me-not" not in str(error.value)


def test_sasl_and_tls_reach_kafka_python_and_faust(tmp_path: Path) -> None:
    cafile = Path(ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt")
    settings = load_settings(
        {"kafka": {**SASL, "security_protocol": "SASL_SSL", "password": "pw", "ssl_cafile": str(cafile)}}
    )
    options = settings.kafka.client_options()
    assert options["sasl_mechanism"] == "SCRAM-SHA-512" and options["sasl_plain_password"] == "pw"
    assert options["ssl_cafile"] == str(cafile)
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL" and credentials.ssl_context is not None
    tls_only = faust_credentials(load_settings({"kafka": {"security_protocol": "SSL"}}))
    assert isinstance(tls_only, faust.SSLCredentials)
    assert faust_credentials(load_settings()) is None


def test_local_sasl_broker_listens_with_scram_only() -> None:
    settings = load_settings({"kafka": {**SASL, "local_sasl": True, "password": "pw"}})
    check_local_sasl(settings)
    properties = server_properties(settings, Path("/data"))
    assert "listeners=SASL_PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093" in properties
    assert "PLAINTEXT://127.0.0.1:9092" not in properties.replace("SASL_PLAINTEXT", "")
    assert "sasl.enabled.mechanisms=SCRAM-SHA-512" in properties


@pytest.mark.parametrize(
    "kafka",
    [
        {"local_sasl": True},
        {**SASL, "local_sasl": True},
        {**SASL, "local_sasl": True, "password": 'with"quote'},
        {**SASL, "local_sasl": True, "password": "pw", "sasl_mechanism": "PLAIN"},
    ],
    ids=["plaintext-clients", "no-password", "quote", "plain-mechanism"],
)
def test_local_sasl_refuses_settings_it_cannot_serve(kafka: dict[str, object]) -> None:
    with pytest.raises(StackError) as error:
        check_local_sasl(load_settings({"kafka": kafka}))
    assert "kafka.local_sasl" in str(error.value) and 'with"quote' not in str(error.value)


def test_redis_acl_user_needs_a_password(tmp_path: Path) -> None:
    service = RedisService(load_settings({"state_dir": str(tmp_path), "redis": {"username": "tm"}}))
    with pytest.raises(StackError, match=r"needs redis\.password"):
        service.preflight()
