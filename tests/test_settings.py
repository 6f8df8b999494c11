"""Settings come from SPENDGATE_* environment variables, typed and checked, as pydantic-settings
read them before `Settings` became a plain pydantic model (a name in any case, arguments win)."""

from __future__ import annotations

import types
import typing
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from spendgate.config import Settings


def test_each_setting_comes_from_its_environment_variable_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPENDGATE_DATABASE_URL", "sqlite:///elsewhere.db")
    monkeypatch.setenv("SPENDGATE_MAX_CONCURRENCY", "12")
    monkeypatch.setenv("SPENDGATE_LEDGER_INGEST_PROCESS", "yes")
    monkeypatch.setenv("SPENDGATE_SPOOL_DIR", "/var/spool/x")
    monkeypatch.setenv("SPENDGATE_BUDGET_MODE", "observe")
    monkeypatch.setenv("SPENDGATE_MASTER_KEY", "sk-master")
    monkeypatch.setenv("SPENDGATE_NOT_A_SETTING", "ignored")
    settings = Settings()
    assert settings.database_url == "sqlite:///elsewhere.db"
    assert settings.max_concurrency == 12
    assert settings.ledger_ingest_process is True
    assert settings.spool_dir == Path("/var/spool/x")
    assert settings.budget_mode == "observe"
    assert isinstance(settings.master_key, SecretStr)
    assert settings.master_key.get_secret_value() == "sk-master"
    assert settings.redis_url is None  # unset: the default


def test_a_lower_case_name_counts_and_an_argument_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("spendgate_redis_url", "redis://cache:6379/0")
    monkeypatch.setenv("SPENDGATE_LOG_LEVEL", "debug")
    settings = Settings(log_level="warning")
    assert settings.redis_url == "redis://cache:6379/0"
    assert settings.log_level == "warning"


def test_a_bad_value_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPENDGATE_REDIS_FAILURE_MODE", "sometimes")
    with pytest.raises(ValidationError, match="redis_failure_mode"):
        Settings()


def test_settings_are_frozen() -> None:
    with pytest.raises(ValidationError):
        Settings().database_url = "sqlite:///other.db"  # type: ignore[misc]


SINGLE = {str, int, float, bool, Path, SecretStr, type(None)}


def test_every_setting_is_a_single_value() -> None:
    # The environment gives each setting one string, which the field's type validates; a list or
    # table would need parsing (pydantic-settings decoded JSON) that Settings does not do.
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        union = isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union
        kinds = typing.get_args(annotation) if union else (annotation,)
        for kind in kinds:
            assert kind in SINGLE or typing.get_origin(kind) is typing.Literal, (name, kind)
