"""The Python client of the original guide: service first, Discord directly, or disabled."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.fake_discord import FakeDiscord
from harness.ports import free_port
from harness.services import REPO_ROOT, ServiceProcess
from services.notifier import client as client_module
from services.notifier.client import DiscordNotifier
from services.notifier.tests.conftest import TOKEN, WEBHOOK_TOKEN, collect_logs


def test_the_guides_names_exist() -> None:
    notifier = client_module.notifier
    assert isinstance(notifier.enabled, bool)
    assert hasattr(notifier, "webhook_url")
    assert callable(notifier.send_alert)
    assert callable(client_module.alert_deployment_success)


def test_without_configuration_it_is_disabled_and_only_logs() -> None:
    notifier = DiscordNotifier()
    assert notifier.enabled is False
    assert notifier.webhook_url is None
    with collect_logs() as logs:
        assert notifier.send_alert(title="Drift", message="psi=0.4", level="warning") is False
    assert any("disabled" in line and "psi=0.4" in line for line in logs)


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="level"):
        DiscordNotifier().send_alert(title="t", message="m", level="loud")  # type: ignore[arg-type]


def test_posts_directly_to_discord_with_the_level_colour(fake_discord: FakeDiscord) -> None:
    notifier = DiscordNotifier(fake_discord.webhook_url())
    assert notifier.enabled
    assert notifier.send_alert(title="Build broke", message="see CI", level="error")
    (message,) = fake_discord.messages()
    assert message["embeds"][0]["title"] == "❌ Build broke"
    assert message["embeds"][0]["color"] == 0xE74C3C


def test_direct_posting_retries_503_and_honours_429(fake_discord: FakeDiscord) -> None:
    notifier = DiscordNotifier(fake_discord.webhook_url())
    fake_discord.fail("status", status=503, count=2)
    assert notifier.send_alert(title="one")
    fake_discord.fail("rate_limit", seconds=60, count=1, retry_after=0.3)
    assert notifier.send_alert(title="two")
    statuses = [r.status for r in fake_discord.requests()]
    assert statuses[:3] == [503, 503, 200]
    assert 429 in statuses
    assert statuses[-1] == 200
    assert len(fake_discord.messages()) == 2


def test_gives_up_and_says_so_when_the_webhook_is_unknown(fake_discord: FakeDiscord) -> None:
    fake_discord.fail("unknown_webhook", seconds=30)
    notifier = DiscordNotifier(fake_discord.webhook_url("5", WEBHOOK_TOKEN))
    with collect_logs() as logs:
        assert notifier.send_alert(title="lost?") is False
    assert len(fake_discord.requests()) == 1
    assert any("discord-webhook:5" in line for line in logs)
    assert not any(WEBHOOK_TOKEN in line for line in logs)
    assert WEBHOOK_TOKEN not in repr(notifier)


def test_alert_deployment_success(
    fake_discord: FakeDiscord, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_module, "notifier", DiscordNotifier(fake_discord.webhook_url()))
    assert client_module.alert_deployment_success("2.1.0")
    (message,) = fake_discord.messages()
    assert "2.1.0" in message["embeds"][0]["description"]
    assert message["embeds"][0]["color"] == 0x2ECC71


@pytest.mark.slow
def test_goes_through_the_service_and_falls_back_to_discord(
    database_url: str, fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    env = {
        "DATABASE_URL": database_url,
        "DISCORD_WEBHOOK_URL": fake_discord.webhook_url("111", WEBHOOK_TOKEN),
        "NOTIFIER_TOKEN": TOKEN,
        "NOTIFIER_POLL_S": "0.2",
    }
    direct = fake_discord.webhook_url("222", "direct")
    with ServiceProcess("notifier", env, tmp_path) as service:
        notifier = DiscordNotifier(direct, notifier_url=service.url, token=TOKEN)
        assert notifier.deliver("via service") == "service"
        wrong = DiscordNotifier(direct, notifier_url=service.url, token="wrong")
        assert wrong.deliver("wrong token") == "discord"
        fake_discord.wait_until(lambda fake: len(fake.messages("111")) == 1)
    down = DiscordNotifier(direct, notifier_url=f"http://127.0.0.1:{free_port()}", token=TOKEN)
    assert down.deliver("service down") == "discord"
    assert [m["embeds"][0]["title"] for m in fake_discord.messages("222")] == [
        "ℹ️ wrong token",
        "ℹ️ service down",
    ]


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "NOTIFIER_"))}
    return subprocess.run(
        [sys.executable, "-m", "services.notifier.client", *args],
        cwd=REPO_ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_help_and_test_alert(fake_discord: FakeDiscord) -> None:
    help_text = _cli("test-alert", "--help", env={})
    assert help_text.returncode == 0
    assert "--level" in help_text.stdout
    sent = _cli(
        "test-alert", "--level", "warning", env={"DISCORD_WEBHOOK_URL": fake_discord.webhook_url()}
    )
    assert sent.returncode == 0, sent.stderr
    assert "posted directly to Discord" in sent.stdout
    assert fake_discord.messages()[0]["embeds"][0]["title"] == "⚠️ Test alert"
    disabled = _cli("test-alert", env={})
    assert disabled.returncode == 1
    assert "neither NOTIFIER_URL (with NOTIFIER_TOKEN) nor DISCORD_WEBHOOK_URL" in disabled.stdout


def test_posting_directly_keeps_the_webhooks_thread(fake_discord: FakeDiscord) -> None:
    notifier = DiscordNotifier(fake_discord.webhook_url() + "?thread_id=4242")
    assert notifier.send_alert(title="threaded")
    (message,) = fake_discord.messages()
    assert message["thread_id"] == "4242"
    assert fake_discord.requests()[0].wait
