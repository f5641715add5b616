"""PostgreSQL goes away under a steady stream of predictions and feedback: nothing is lost,
every refusal says when to retry, and the outage is alerted and resolved on Discord through
the real Prometheus, Alertmanager and notifier."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from harness.stack import Stack, running_stack, wait_for
from services.common.migrate import apply_migrations, create_database_if_missing, with_database
from tests.support.postgres import PrivatePostgres
from tests.system.traffic import MixedTraffic

pytestmark = pytest.mark.slow

ALERT = "CVDatabaseDisconnected"
# What the brief calls a real outage; the alert's committed `for: 1m` decides how long it
# must last to be alerted, so the server stays down at least this long and until it fires.
MIN_OUTAGE_S = 30.0


@pytest.fixture(scope="module")
def private_server() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    server.init()
    server.start()
    yield server
    server.destroy()


@pytest.fixture(scope="module")
def outage_stack(
    private_server: PrivatePostgres, model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    database_url = with_database(private_server.url, "predictions_feedback")
    create_database_if_missing(database_url)
    apply_migrations(database_url)
    work_dir = tmp_path_factory.mktemp("outage")
    with running_stack(database_url, model_path, work_dir, monitoring=True) as running:
        yield running


def embed_titles(messages: list[dict[str, Any]]) -> list[str]:
    return [embed.get("title", "") for message in messages for embed in message["embeds"]]


def announced(messages: list[dict[str, Any]], status: str) -> bool:
    """Whether Discord shows the alert in `status`, as the notifier or Alertmanager words it."""
    pattern = re.compile(rf"\[{status}(:\d+)?\] {ALERT}")
    return any(pattern.search(title) for title in embed_titles(messages))


def alert_state(stack: Stack, name: str) -> set[str]:
    assert stack.prometheus is not None
    return {a["state"] for a in stack.prometheus.alerts() if a["labels"]["alertname"] == name}


def stored(database_url: str, table: str, column: str) -> set[str]:
    with psycopg.connect(database_url, connect_timeout=3) as connection:
        return {row[0] for row in connection.execute(f"SELECT {column}::text FROM {table}")}


def test_nothing_is_lost_and_the_outage_is_alerted(
    outage_stack: Stack, private_server: PrivatePostgres
) -> None:
    stack = outage_stack
    assert stack.prometheus is not None
    wait_for(
        lambda: stack.prometheus.targets_up({"inference", "feedback", "notifier", "dashboard"}),  # type: ignore[union-attr]
        60,
        "every service scraped",
    )
    traffic = MixedTraffic(stack.url("inference"), stack.url("feedback"))
    traffic.start()
    wait_for(lambda: traffic.snapshot()[1] >= 3, 60, "feedback flowing before the outage")

    private_server.stop(mode="fast")
    stopped_at = time.monotonic()
    wait_for(lambda: traffic.snapshot()[2] >= 1, 30, "feedback refused while PostgreSQL is down")
    wait_for(lambda: "firing" in alert_state(stack, ALERT), 150, f"{ALERT} firing in Prometheus")
    wait_for(lambda: time.monotonic() - stopped_at >= MIN_OUTAGE_S, MIN_OUTAGE_S, "the outage")
    predicted_during_outage = traffic.snapshot()[0]
    private_server.start()

    # Alertmanager routes this alert straight to Discord (the notifier's outbox lives in the
    # database that is down); it resolves once `keep_firing_for` has passed after the restart.
    stack.discord.wait_until(lambda fake: announced(fake.messages(), "FIRING"), 120)
    stack.discord.wait_until(lambda fake: announced(fake.messages(), "RESOLVED"), 180)
    after_restart = traffic.snapshot()
    wait_for(lambda: traffic.snapshot()[1] > after_restart[1], 60, "feedback stored again")
    outcomes = traffic.stop()

    database_url = stack.database_url
    wait_for(
        lambda: set(outcomes.predicted) <= stored(database_url, "monitoring", "id"),
        60,
        "every answered prediction written to PostgreSQL",
    )
    missing_feedback = set(outcomes.feedback_stored) - stored(
        database_url, "feedback", "prediction_id"
    )
    summary = json.dumps(
        {
            "predictions": len(outcomes.predicted),
            "predicted_before_restart": predicted_during_outage,
            "feedback_stored": len(outcomes.feedback_stored),
            "feedback_refused": len(outcomes.feedback_refused),
            "statuses": outcomes.statuses,
        }
    )
    assert not outcomes.unexpected, summary + f" unexpected: {outcomes.unexpected[:5]}"
    assert not outcomes.transport_errors, summary + f" errors: {outcomes.transport_errors[:5]}"
    assert not missing_feedback, f"{len(missing_feedback)} feedback answered 201 but not stored"
    assert outcomes.feedback_refused, summary
    assert all(status == 503 and retry for status, retry in outcomes.feedback_refused), summary
    messages = stack.discord.messages()
    assert announced(messages, "FIRING") and announced(messages, "RESOLVED")
