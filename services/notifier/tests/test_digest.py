"""The daily model-health digest, from rows in PostgreSQL to the fake Discord."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import psycopg
import pytest
from fastapi.testclient import TestClient

from harness.fake_discord import FakeDiscord, validate_message
from harness.services import REPO_ROOT
from services.notifier.app import create_app
from services.notifier.digest import Figures, due, queue
from services.notifier.settings import Settings
from services.notifier.tests.conftest import TOKEN

END = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def _predict(
    db: psycopg.Connection,
    at: datetime,
    label: str,
    confidence: float,
    *,
    pet_score: float = 0.9,
    feedback: tuple[str, str | None] | None = None,
) -> None:
    prediction_id = uuid.uuid4()
    db.execute(
        "INSERT INTO monitoring (id, created_at, prediction_result, proba_cat, proba_dog, "
        "confidence, pet_score, inference_time_ms, model_version) "
        "VALUES (%s, %s, %s, 0.5, 0.5, %s, %s, 10, '2.0.0')",
        (prediction_id, at, label, confidence, pet_score),
    )
    if feedback is not None:
        satisfaction, true_label = feedback
        db.execute(
            "INSERT INTO feedback (prediction_id, satisfaction, true_label, consent_at, "
            "created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s)",
            (prediction_id, satisfaction, true_label, at, at, at),
        )


@pytest.fixture
def two_days(db: psycopg.Connection) -> None:
    """Yesterday: 4 predictions, no feedback, 1 alert; today: 10 predictions, 10 feedbacks
    (9 right), 2 low-confidence, 1 not a pet, 2 alerts."""
    db.execute(
        "INSERT INTO model_versions (version, name, sha256, file_name, card, role) "
        "VALUES ('2.0.0', 'm', 'x', 'm.onnx', '{\"pet_threshold\": 0.16}', 'active')"
    )
    yesterday = END - timedelta(hours=30)
    for label in ("cat", "dog", "dog", "dog"):
        _predict(db, yesterday, label, 0.95)
    today = END - timedelta(hours=2)
    for number in range(10):
        right = number != 0
        _predict(
            db,
            today,
            "cat" if number < 6 else "dog",
            0.7 if number in (1, 2) else 0.97,
            pet_score=0.05 if number == 3 else 0.9,
            # Number 0 is wrong by the user's true label; the others are right either way.
            feedback=("unsatisfied", "dog") if not right else ("satisfied", None),
        )
    _predict(db, END + timedelta(minutes=5), "cat", 0.99)  # after the window
    alerts = [
        {"status": "firing", "labels": {"alertname": "A"}, "startsAt": at.isoformat()}
        for at in (yesterday, today, today)
    ]
    db.execute(
        "INSERT INTO notifier_episodes (group_key, route, alerts) VALUES ('g', 'warning', %s)",
        (json.dumps(alerts),),
    )


def _fields(payload: dict) -> dict[str, str]:
    (embed,) = payload["embeds"]
    return {item["name"]: item["value"] for item in embed["fields"]}


@pytest.mark.asyncio
@pytest.mark.usefixtures("two_days")
async def test_the_digest_compares_the_last_day_with_the_one_before(
    notifier_settings: Settings, database_url: str, db: psycopg.Connection
) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        message = await queue(pool, notifier_settings, END)
    finally:
        await pool.close()
    assert message is not None
    assert validate_message(message.payload) == {}
    fields = _fields(message.payload)
    assert fields["Predictions"] == "**10**\n+6 (was 4)"
    assert fields["Cat share"] == "**60.0%**\n+35.0 pts (was 25.0%)"
    assert fields["Low confidence (< 0.8)"] == "**20.0%**\n+20.0 pts (was 0.0%)"
    assert fields["Not a cat nor a dog"] == "**10.0%**\n+10.0 pts (was 0.0%)"
    assert fields["Feedback"] == "**10**\n+10 (was 0)"
    # Wilson's 95 % interval for 9 of 10: 59.6 % to 98.2 %.
    assert fields["Live accuracy"] == "**90.0% (95 % CI 59.6%–98.2%)**\nno feedback the day before"
    assert fields["Alerts fired"] == "**2**\n+1 (was 1)"
    (stored,) = db.execute("SELECT group_key, source, payload FROM notifier_outbox").fetchall()
    assert stored[:2] == ("digest", "digest")
    assert stored[2] == message.payload


def test_no_feedback_means_no_accuracy_rather_than_a_made_up_one() -> None:
    assert Figures(3, 1, 0, 0, 0, 0, 0).accuracy is None
    assert Figures(0, 0, 0, 0, 0, 0, 0).share(0) is None


@pytest.mark.asyncio
async def test_a_days_digest_is_queued_once_whoever_asks(
    notifier_settings: Settings, database_url: str, db: psycopg.Connection
) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        first = await queue(pool, notifier_settings, END, day=END.date())
        second = await queue(pool, notifier_settings, END, day=END.date())
        on_demand = await queue(pool, notifier_settings, END)
    finally:
        await pool.close()
    assert first is not None
    assert second is None
    assert on_demand is not None
    assert db.execute("SELECT count(*) FROM notifier_outbox").fetchone() == (2,)


def test_the_digest_is_due_from_its_hour_on() -> None:
    assert due(datetime(2026, 12, 2, 7, 59, tzinfo=UTC), 8) is None
    assert due(datetime(2026, 12, 2, 9, 30, tzinfo=UTC), 8) == (END.date(), END)


def test_the_notifier_posts_the_digest_once_a_day(
    notifier_settings: Settings, fake_discord: FakeDiscord
) -> None:
    settings = notifier_settings.model_copy(
        update={"digest_hour": datetime.now(UTC).hour, "digest_check_s": 0.1}
    )
    for _ in range(2):
        with TestClient(create_app(settings)):
            fake_discord.wait_for_messages(1)
    (message,) = fake_discord.messages()
    assert message["embeds"][0]["title"] == "📊 Model health, the last 24 hours"
    assert message["allowed_mentions"] == {"parse": []}


@pytest.mark.usefixtures("two_days")
def test_the_cli_prints_or_queues_the_digest(database_url: str, db: psycopg.Connection) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "NOTIFIER_"))},
        "DATABASE_URL": database_url,
        "NOTIFIER_TOKEN": TOKEN,
    }
    command = [sys.executable, "-m", "services.notifier.client", "digest"]
    printed = subprocess.run(
        [*command, "--print"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert printed.returncode == 0, printed.stderr
    assert "Model health" in printed.stdout
    assert "Predictions: " in printed.stdout
    assert db.execute("SELECT count(*) FROM notifier_outbox").fetchone() == (0,)
    sent = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert sent.returncode == 0, sent.stderr
    assert "queued" in sent.stdout
    assert db.execute("SELECT source FROM notifier_outbox").fetchall() == [("digest",)]
