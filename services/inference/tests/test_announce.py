"""The inference service announces its start through the notifier, without ever waiting on it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from harness.fake_discord import FakeDiscord
from harness.services import ServiceProcess
from services.common.notify import ClientSettings, announce_start
from services.inference.app import create_app as create_inference_app
from services.inference.settings import Settings as InferenceSettings

NOTIFIER_TOKEN_VALUE = "notifier-test-token-announce"


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def _inference(database_url: str, model_path: Path) -> TestClient:
    settings = InferenceSettings(database_url=database_url, model_path=model_path)
    return TestClient(create_inference_app(settings))


def test_nothing_is_announced_without_notifier_url() -> None:
    assert announce_start("inference", "1.0", ClientSettings(notifier_url=None)) is None


def test_inference_start_never_waits_for_a_hanging_notifier(
    database_url: str, model_path: Path, silent_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFIER_URL", silent_server)
    monkeypatch.setenv("NOTIFIER_TIMEOUT_S", "30")
    with _inference(database_url, model_path) as client:
        assert client.get("/health").status_code == 200
        announcement = client.app.state.announcement  # type: ignore[attr-defined]
        assert announcement is not None
        assert not announcement.done()
    assert announcement.cancelled()


def test_inference_starts_when_the_notifier_is_down(
    database_url: str, model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFIER_URL", "http://127.0.0.1:1")
    with _inference(database_url, model_path) as client:
        assert client.get("/health").status_code == 200


@pytest.mark.slow
def test_inference_announces_its_model_version(
    database_url: str,
    model_path: Path,
    fake_discord: FakeDiscord,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {
        "DATABASE_URL": database_url,
        "DISCORD_WEBHOOK_URL": fake_discord.webhook_url(),
        "NOTIFIER_TOKEN": NOTIFIER_TOKEN_VALUE,
    }
    with ServiceProcess("notifier", env, tmp_path) as notifier:
        monkeypatch.setenv("NOTIFIER_URL", notifier.url)
        monkeypatch.setenv("NOTIFIER_TOKEN", NOTIFIER_TOKEN_VALUE)
        with _inference(database_url, model_path) as client:
            version = client.get("/model").json()["version"]
            (message,) = fake_discord.wait_for_messages(1)
    assert message["embeds"][0]["title"] == "ℹ️ inference started"
    assert version in message["embeds"][0]["description"]
