"""Configuration is read once, validated, and never echoes secrets."""

from __future__ import annotations

import pytest

from medflow.config import ConfigError, load_settings


def test_unset_urls_select_the_embedded_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDFLOW_DATA_DIR", str(tmp_path))
    for name in ("DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP", "S3_ENDPOINT"):
        monkeypatch.delenv(f"MEDFLOW_{name}", raising=False)
    settings = load_settings()
    assert settings.resolved_database_url() == f"sqlite:///{tmp_path / 'medflow.sqlite3'}"
    assert settings.redis_url is None and settings.kafka_bootstrap is None and settings.s3_endpoint is None


def test_invalid_values_name_the_variable_but_not_the_value(monkeypatch):
    monkeypatch.setenv("MEDFLOW_REDIS_URL", "http://:hunter2@cache:6379")
    monkeypatch.setenv("MEDFLOW_MAX_BODY_BYTES", "-5")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "MEDFLOW_REDIS_URL" in message and "MEDFLOW_MAX_BODY_BYTES" in message
    assert "hunter2" not in message


def test_s3_endpoint_requires_credentials(monkeypatch):
    monkeypatch.setenv("MEDFLOW_S3_ENDPOINT", "http://127.0.0.1:9000")
    monkeypatch.delenv("MEDFLOW_S3_ACCESS_KEY", raising=False)
    with pytest.raises(ConfigError, match="MEDFLOW_S3_ACCESS_KEY"):
        load_settings()


def test_secrets_are_hidden_in_the_settings_repr(monkeypatch):
    monkeypatch.setenv("MEDFLOW_DATABASE_URL", "mysql+pymysql://u:s3cret@db/medflow")
    monkeypatch.setenv("MEDFLOW_REDIS_URL", "redis://:s3cret@cache:6379/0")
    assert "s3cret" not in repr(load_settings())
