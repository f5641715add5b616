"""PostgreSQL restarts under the notifier: 503 while it is away, nothing lost, then recovery."""

from __future__ import annotations

import contextlib

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from harness.fake_discord import FakeDiscord
from services.common.migrate import apply_migrations, create_database_if_missing, with_database
from services.notifier.app import create_app
from services.notifier.settings import Settings
from services.notifier.tests.conftest import TOKEN
from tests.support.postgres import PrivatePostgres

pytestmark = pytest.mark.slow


def test_queued_messages_survive_a_database_restart(fake_discord: FakeDiscord) -> None:
    server = PrivatePostgres()
    server.init()
    server.start()
    try:
        url = with_database(server.url, "predictions_feedback")
        create_database_if_missing(url)
        apply_migrations(url)
        settings = Settings(
            database_url=url,
            discord_webhook_url=SecretStr(fake_discord.webhook_url()),
            notifier_token=SecretStr(TOKEN),
            db_connect_timeout_s=1,
            db_probe_interval_s=0.2,
            delivery_poll_s=0.1,
        )
        fake_discord.fail("status", status=503, seconds=3600)
        with TestClient(create_app(settings)) as client:
            client.headers["Authorization"] = f"Bearer {TOKEN}"
            assert client.post("/notify", json={"title": "before"}).status_code == 202
            fake_discord.wait_until(lambda fake: len(fake.requests()) >= 1)
            server.stop("immediate")
            refused = client.post("/notify", json={"title": "during"})
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "5"
            fake_discord.wait_until(lambda _: client.get("/ready").status_code == 503)
            server.start()
            fake_discord.heal()
            fake_discord.wait_until(lambda _: client.get("/ready").status_code == 200)
            assert client.post("/notify", json={"title": "after"}).status_code == 202
            messages = fake_discord.wait_for_messages(2)
    finally:
        with contextlib.suppress(RuntimeError):
            server.stop("immediate")
    assert [m["embeds"][0]["title"] for m in messages] == ["ℹ️ before", "ℹ️ after"]
