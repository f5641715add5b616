"""Fixtures for the notifier's tests: a fake Discord, settings, the app with its lifespan."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from pythonjsonlogger.json import JsonFormatter

from harness.fake_discord import FakeDiscord
from services.notifier.app import create_app
from services.notifier.settings import Settings

TOKEN = "notifier-test-token-7f3a9c"
WEBHOOK_TOKEN = "webhook-secret-token-91b2"


@pytest.fixture
def notifier_settings(database_url: str, fake_discord: FakeDiscord) -> Settings:
    """Settings pointing at the test's database and the fake, with short retry pauses."""
    return Settings(
        database_url=database_url,
        discord_webhook_url=SecretStr(fake_discord.webhook_url("111", WEBHOOK_TOKEN)),
        notifier_token=SecretStr(TOKEN),
        grafana_url="https://grafana.example.org/d/cv-overview",
        delivery_poll_s=0.1,
        retry_base_s=0.05,
        retry_max_s=0.5,
        config_error_retry_s=0.3,
        db_probe_interval_s=0.2,
        stats_interval_s=0.1,
        delivery_lease_s=5,
    )


@pytest.fixture
def client(notifier_settings: Settings) -> Iterator[TestClient]:
    """The app with its lifespan running, sending the right bearer token."""
    with TestClient(create_app(notifier_settings)) as test_client:
        test_client.headers["Authorization"] = f"Bearer {TOKEN}"
        yield test_client


class _Collector(logging.Handler):
    """Keeps every record as the JSON line the service would print, extras included."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(JsonFormatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextlib.contextmanager
def collect_logs() -> Iterator[list[str]]:
    """Every log line (DEBUG and up) emitted inside the block, formatted as JSON.

    The app factory reconfigures the root logger, so this is entered after it ran.
    """
    collector = _Collector()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(collector)
    root.setLevel(logging.DEBUG)
    try:
        yield collector.lines
    finally:
        root.removeHandler(collector)
        root.setLevel(previous)
