"""A real Alertmanager (Debian's 0.25) delivers to the real notifier with its bearer token;
the resolution edits the message the firing posted."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from harness.fake_discord import FakeDiscord
from harness.monitoring import INSTALL_HINT, Alertmanager, alertmanager_binary
from harness.services import ServiceProcess
from services.notifier.tests.conftest import TOKEN, WEBHOOK_TOKEN

pytestmark = pytest.mark.slow

CONFIG = """
route:
  receiver: notifier
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: notifier
    webhook_configs:
      - url: {notifier}/alertmanager
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: {token}
"""


@pytest.fixture
def alertmanager_for(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Start Alertmanager routing everything to a given notifier URL; yields its base URL."""
    if alertmanager_binary() is None:
        pytest.skip(f"Alertmanager is not installed: {INSTALL_HINT}")
    started: list[Alertmanager] = []

    def start(notifier_url: str) -> str:
        alertmanager = Alertmanager(CONFIG.format(notifier=notifier_url, token=TOKEN), tmp_path)
        started.append(alertmanager.start(timeout_s=30))
        return alertmanager.url

    yield start
    for alertmanager in started:
        alertmanager.stop()


def test_alertmanager_firing_and_resolved_reach_discord(
    database_url: str,
    fake_discord: FakeDiscord,
    alertmanager_for: Callable[[str], str],
    tmp_path: Path,
) -> None:
    env = {
        "DATABASE_URL": database_url,
        "DISCORD_WEBHOOK_URL": fake_discord.webhook_url("111", WEBHOOK_TOKEN),
        "NOTIFIER_TOKEN": TOKEN,
        "GRAFANA_URL": "https://grafana.example.org/d/cv",
    }
    with ServiceProcess("notifier", env, tmp_path) as notifier:
        alertmanager = alertmanager_for(notifier.url)
        started = datetime.now(UTC) - timedelta(minutes=5)
        alert = {
            "labels": {"alertname": "NotifierEndToEnd", "severity": "warning", "job": "e2e"},
            "annotations": {"summary": "It works", "description": "From a real Alertmanager."},
            "generatorURL": "http://prometheus.example.org/graph?g0.expr=up",
            "startsAt": started.isoformat(),
        }
        assert httpx.post(f"{alertmanager}/api/v2/alerts", json=[alert]).status_code == 200
        (firing,) = fake_discord.wait_for_messages(1, timeout_s=60)
        embed = firing["embeds"][0]
        assert embed["title"] == "⚠️ [FIRING] NotifierEndToEnd"
        assert "**It works**" in embed["description"]
        assert embed["url"] == "http://prometheus.example.org/graph?g0.expr=up"
        resolved_alert = {**alert, "endsAt": datetime.now(UTC).isoformat()}
        assert httpx.post(f"{alertmanager}/api/v2/alerts", json=[resolved_alert]).status_code == 200
        fake_discord.wait_until(lambda fake: fake.messages()[0]["edits"] >= 1, timeout_s=60)
        metrics = httpx.get(f"{notifier.url}/metrics").text
    (message,) = fake_discord.messages()
    assert message["id"] == firing["id"]
    resolved = message["embeds"][0]
    assert resolved["title"] == "✅ [RESOLVED] NotifierEndToEnd"
    assert resolved["color"] == 0x2ECC71
    assert 'cv_notifier_messages_queued_total{source="alertmanager"} 2.0' in metrics
    assert "cv_notifier_messages_edited_total 1.0" in metrics
