"""The real notifier process against a misbehaving Discord: nothing lost, nothing posted twice.

The issue asks for a one-minute Discord outage; CI uses NOTIFIER_OUTAGE_S (default 6 s,
three phases: 503s, 429s, dropped connections). `NOTIFIER_OUTAGE_S=60` runs the full minute.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from harness.alert_payloads import alert, fingerprints_posted, webhook
from harness.fake_discord import FakeDiscord
from harness.services import ServiceProcess
from services.notifier.tests.conftest import TOKEN, WEBHOOK_TOKEN

OUTAGE_S = float(os.environ.get("NOTIFIER_OUTAGE_S", "6"))
AUTH = {"Authorization": f"Bearer {TOKEN}"}

pytestmark = pytest.mark.slow


def _env(database_url: str, fake: FakeDiscord) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "DISCORD_WEBHOOK_URL": fake.webhook_url("111", WEBHOOK_TOKEN),
        "NOTIFIER_TOKEN": TOKEN,
        "DEV_MODE": "false",
        "NOTIFIER_POLL_S": "0.2",
        "NOTIFIER_RETRY_BASE_S": "0.2",
        "NOTIFIER_RETRY_MAX_S": "1.5",
        "NOTIFIER_LEASE_S": "2",
        "DB_PROBE_INTERVAL_S": "0.5",
        "NOTIFIER_STATS_INTERVAL_S": "0.2",
    }


def _storm(urls: list[str], groups: int, per_group: int) -> list[str]:
    """Post `groups` webhooks of `per_group` alerts, round-robin over `urls`; 202 each."""
    sent = []
    for group in range(groups):
        alerts = [alert(f"Alert{group}", f"g{group}a{n}") for n in range(per_group)]
        body = webhook(alerts, group_key=f'{{}}:{{alertname="Alert{group}"}}')
        response = httpx.post(f"{urls[group % len(urls)]}/alertmanager", json=body, headers=AUTH)
        assert response.status_code == 202, response.text
        sent += [a["fingerprint"] for a in alerts]
    return sent


def _all_posted(expected: list[str]):  # type: ignore[no-untyped-def]
    return lambda fake: len(fingerprints_posted(fake.messages())) >= len(expected)


def _pending(db: psycopg.Connection) -> int:
    row = db.execute("SELECT count(*) FROM notifier_outbox WHERE state = 'pending'").fetchone()
    assert row is not None
    return int(row[0])


def test_no_alert_lost_through_503s_429s_and_dropped_connections(
    database_url: str, fake_discord: FakeDiscord, db: psycopg.Connection, tmp_path: Path
) -> None:
    phase_s = OUTAGE_S / 3
    with ServiceProcess("notifier", _env(database_url, fake_discord), tmp_path) as notifier:
        fake_discord.fail("status", seconds=3600, status=503)
        expected = _storm([notifier.url], groups=6, per_group=4)
        # Each phase lasts `phase_s` and until the notifier has met it at least once.
        for mode, status in (("status", 503), ("rate_limit", 429), ("drop", 0)):
            seen = len(fake_discord.requests())
            fake_discord.fail(mode, seconds=3600, status=503, retry_after=0.5)
            phase_end = time.monotonic() + phase_s
            fake_discord.wait_until(
                lambda fake, code=status, end=phase_end, seen=seen: (
                    time.monotonic() >= end
                    and any(r.status == code for r in fake.requests()[seen:])
                ),
                timeout_s=phase_s + 60,
            )
        fake_discord.heal()
        fake_discord.wait_until(_all_posted(expected), timeout_s=60)
        metrics = httpx.get(f"{notifier.url}/metrics").text
    assert sorted(fingerprints_posted(fake_discord.messages())) == sorted(expected)
    assert _pending(db) == 0
    assert 'cv_notifier_messages_retried_total{reason="transient_error"}' in metrics
    assert 'cv_notifier_messages_retried_total{reason="rate_limited"}' in metrics
    logs = notifier.log_path.read_text()
    assert "discord-webhook:111" in logs
    assert WEBHOOK_TOKEN not in logs + metrics
    assert TOKEN not in logs + metrics


def test_queued_alerts_survive_sigkill_and_are_posted_once_after_restart(
    database_url: str, fake_discord: FakeDiscord, db: psycopg.Connection, tmp_path: Path
) -> None:
    env = _env(database_url, fake_discord)
    fake_discord.fail("status", seconds=3600, status=503)
    notifier = ServiceProcess("notifier", env, tmp_path).start()
    try:
        expected = _storm([notifier.url], groups=5, per_group=4)
        fake_discord.wait_until(lambda fake: len(fake.requests()) >= 3)
    finally:
        notifier.stop(signal.SIGKILL)
    assert _pending(db) == 5
    assert fake_discord.messages() == []
    fake_discord.heal()
    with ServiceProcess("notifier", env, tmp_path):
        fake_discord.wait_until(_all_posted(expected), timeout_s=60)
        fake_discord.wait_until(lambda _: _pending(db) == 0)
    assert sorted(fingerprints_posted(fake_discord.messages())) == sorted(expected)


def test_two_replicas_post_every_message_exactly_once(
    database_url: str, fake_discord: FakeDiscord, db: psycopg.Connection, tmp_path: Path
) -> None:
    env = _env(database_url, fake_discord)
    with (
        ServiceProcess("notifier", env, tmp_path) as first,
        ServiceProcess("notifier", env, tmp_path) as second,
    ):
        urls = [first.url, second.url]
        expected = _storm(urls, groups=8, per_group=3)
        # Alertmanager in HA mode may deliver the same group to both replicas.
        duplicate = webhook([alert("Alert0", "g0a0")], group_key='{}:{alertname="Alert0"}')
        for url in urls:
            response = httpx.post(f"{url}/alertmanager", json=duplicate, headers=AUTH)
            assert response.json()["messages"] == 0
        titles = [f"replica note {n}" for n in range(6)]
        for number, title in enumerate(titles):
            body = {"title": title, "message": "", "level": "info"}
            response = httpx.post(f"{urls[number % 2]}/notify", json=body, headers=AUTH)
            assert response.status_code == 202
        fake_discord.wait_until(lambda fake: len(fake.messages()) >= 8 + len(titles))
        fake_discord.wait_until(lambda _: _pending(db) == 0)
        delivered = sum(_delivered_by(url) for url in urls)
    messages = fake_discord.messages()
    assert sorted(fingerprints_posted(messages)) == sorted(expected)
    posted_titles = [m["embeds"][0]["title"] for m in messages if not m["content"]]
    assert sorted(posted_titles) == sorted(f"ℹ️ {title}" for title in titles)
    assert delivered == len(messages) == 8 + len(titles)
    leased = db.execute("SELECT count(*) FROM notifier_outbox WHERE lease_owner IS NOT NULL")
    assert leased.fetchone() == (0,)


def _delivered_by(url: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("cv_notifier_messages_delivered_total "):
            return float(line.split()[1])
    return 0.0
