"""Each setting answers to the one environment name `.env.example` documents."""

from __future__ import annotations

import importlib
import secrets
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from services.common.settings import documented_names, require_secret

SERVICES = ("inference", "feedback", "notifier", "dashboard")


def settings_class(service: str) -> type[BaseSettings]:
    cls: type[BaseSettings] = importlib.import_module(f"services.{service}.settings").Settings
    return cls


def build(cls: type[BaseSettings]) -> BaseSettings:
    # No `.env` here: a developer's file must not decide what this test sees.
    return cls(_env_file=None)


@pytest.fixture(autouse=True)
def dev_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEV_MODE", "true")


@pytest.mark.parametrize("service", SERVICES)
def test_a_bare_port_is_ignored_and_the_services_own_port_variable_is_read(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cls = settings_class(service)
    documented = f"{service.upper()}_PORT"
    monkeypatch.delenv(documented, raising=False)
    default = cls.model_fields["port"].default
    monkeypatch.setenv("PORT", "9999")
    assert build(cls).port == default
    monkeypatch.setenv(documented, "9998")
    assert build(cls).port == 9998


def test_the_notifier_poll_interval_is_read_from_notifier_poll_s_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cls = settings_class("notifier")
    monkeypatch.delenv("NOTIFIER_POLL_S", raising=False)
    monkeypatch.setenv("DELIVERY_POLL_S", "0.25")
    assert build(cls).delivery_poll_s == 1.0
    monkeypatch.setenv("NOTIFIER_POLL_S", "0.5")
    assert build(cls).delivery_poll_s == 0.5


def test_an_undocumented_name_in_the_env_file_is_ignored_too(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cls = settings_class("notifier")
    for name in ("NOTIFIER_POLL_S", "DELIVERY_POLL_S", "NOTIFIER_PORT", "PORT"):
        monkeypatch.delenv(name, raising=False)
    env_file = tmp_path / ".env"
    env_file.write_text("DELIVERY_POLL_S=0.25\nPORT=9999\n")
    settings = cls(_env_file=env_file)
    assert settings.delivery_poll_s == 1.0
    assert settings.port == 8002
    env_file.write_text("NOTIFIER_POLL_S=0.5\nNOTIFIER_PORT=9998\n")
    settings = cls(_env_file=env_file)
    assert settings.delivery_poll_s == 0.5
    assert settings.port == 9998


@pytest.mark.parametrize("service", SERVICES)
def test_no_aliased_field_is_read_under_its_own_name(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cls = settings_class(service)
    defaults = build(cls)
    aliased = {
        name: info
        for name, info in cls.model_fields.items()
        if name not in documented_names(name, info)
    }
    assert aliased, "every service renames at least its port"
    for name, info in aliased.items():
        if isinstance(info.default, int | float) and not isinstance(info.default, bool):
            monkeypatch.setenv(name.upper(), str(info.default + 1))
    assert build(cls) == defaults


def test_python_callers_still_pass_field_names() -> None:
    cls = settings_class("notifier")
    settings = cls(delivery_poll_s=0.1, port=1234, _env_file=None)
    assert settings.delivery_poll_s == 0.1
    assert settings.port == 1234


@pytest.mark.parametrize(
    "weak",
    [None, "", "changeme", "x", "Changeme!", "dev-notifier-token", "a" * 40, "abab" * 10],
)
def test_weak_secrets_are_refused_outside_dev_mode(weak: str | None) -> None:
    with pytest.raises(ValueError, match="NOTIFIER_TOKEN") as refused:
        require_secret("NOTIFIER_TOKEN", weak, dev_mode=False)
    if weak and len(weak) >= 8:
        assert weak not in str(refused.value)
    assert require_secret("NOTIFIER_TOKEN", weak, dev_mode=True) == weak


def test_a_generated_secret_is_accepted() -> None:
    token = secrets.token_hex(32)
    assert require_secret("NOTIFIER_TOKEN", token, dev_mode=False) == token
