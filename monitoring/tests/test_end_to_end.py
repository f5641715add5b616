"""Monitoring end to end: real services, Prometheus, Alertmanager, notifier and a fake Discord.

One scenario, because each step needs the state the previous one built:
1. the four services, a real Prometheus (the project's config and rules, scraping and
   evaluating every second) and a real Alertmanager (the project's routing, short group timers)
   run against a private PostgreSQL;
2. real traffic: predictions, a refused upload, feedback, a direct notification;
3. every SQL query of the Grafana dashboard runs against that PostgreSQL and returns rows;
4. a burst of unsatisfied feedback: every PromQL query of the dashboard runs against that
   Prometheus and returns data, and CVUnsatisfiedFeedbackSpike reaches Discord via the notifier;
5. an alert raised and resolved through Alertmanager's API is one notifier message, posted
   firing and edited to resolved;
6. PostgreSQL stops: CVDatabaseDisconnected reaches Discord (straight from Alertmanager: the
   notifier's outbox is in that database); PostgreSQL returns: the resolution arrives.
Only intervals are shortened (scrape/evaluation, Alertmanager's group timers); the rules, their
`for:` and `keep_firing_for:`, and the routes are the committed ones.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from harness.monitoring import Prometheus
from harness.waiting import wait_until
from monitoring.grafana.build_dashboards import DASHBOARD_FILE
from monitoring.tests.conftest import ALL_SERVICES, STACK_TOKEN, MonitoredStack
from monitoring.tests.grafana_sql import expand
from services.common.migrate import apply_migrations, create_database_if_missing, with_database
from tests.support.images import jpeg
from tests.support.postgres import PrivatePostgres

# Bounded by the committed `for:` durations: about 1 min to fire, 1 min more to resolve.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]

# Dashboard queries that legitimately return nothing after ordinary traffic: their series
# only exist once something was dropped (they still have to run without error).
EMPTY_WITHOUT_INCIDENT = {
    "sum by (kind) (increase(cv_prediction_writes_dropped_total[1h]))",
    "sum by (reason) (increase(cv_notifier_messages_dropped_total[1h]))",
    "sum by (reason) (increase(cv_model_rollbacks_total[1h]))",
}
# Metrics of a canary or a shadow: this stack serves one model (test_grafana_versions.py
# evaluates those queries on series shaped like the service's).
NEEDS_A_CANDIDATE = ("cv_model_feedback_", "cv_canary_", "cv_shadow_")
# Drift needs a model with a reference set and a full window: the tiny model has neither
# (test_drift_end_to_end.py runs these queries on the real model).
NEEDS_A_REFERENCE = ("cv_embedding_drift_",)


@pytest.fixture
def stack_env(tiny_model_path: Path) -> dict[str, str]:
    """The tiny model, checked by the model watch every second so its panels fill in."""
    return {"MODEL_PATH": str(tiny_model_path), "DRIFT_INTERVAL_S": "1"}


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    """A server of its own: the scenario stops and restarts it."""
    server = PrivatePostgres()
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture
def stack_database_url(postgres: PrivatePostgres) -> str:
    """The services' database, on the private server."""
    database_url = with_database(postgres.url, "predictions_feedback")
    create_database_if_missing(database_url)
    apply_migrations(database_url)
    return database_url


def _dashboard_targets() -> list[dict[str, Any]]:
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    return [target for panel in dashboard["panels"] for target in panel.get("targets", [])]


def _predict(client: httpx.Client, url: str, color: tuple[int, int, int]) -> str:
    response = client.post(
        f"{url}/predict",
        files={"file": ("photo.jpg", jpeg(color), "image/jpeg")},
        data={"rgpd_consent": "true"},
    )
    assert response.status_code == 200, response.text
    prediction_id: str = response.json()["prediction_id"]
    return prediction_id


def _feedback(client: httpx.Client, url: str, prediction_id: str, satisfaction: str) -> None:
    body = {"prediction_id": prediction_id, "satisfaction": satisfaction, "rgpd_consent": True}
    response = client.post(f"{url}/feedback", json=body)
    assert response.status_code == 201, response.text


def _traffic(stack: MonitoredStack) -> list[str]:
    """Predictions of both classes, a refused upload, dashboard pages, a notification."""
    inference = stack.services["inference"].url
    with httpx.Client(timeout=30) as client:
        predictions = [
            _predict(client, inference, (220, 20, 20) if i % 2 else (20, 20, 220))
            for i in range(24)
        ]
        refused = client.post(
            f"{inference}/predict", files={"file": ("x.jpg", b"not an image", "image/jpeg")}
        )
        assert refused.status_code == 400
        for path in ("/monitoring/", "/health"):
            client.get(f"{stack.services['dashboard'].url}{path}")
        notified = client.post(
            f"{stack.services['notifier'].url}/notify",
            json={"title": "Deployment", "message": "end-to-end check", "level": "info"},
            headers={"Authorization": f"Bearer {STACK_TOKEN}"},
        )
        assert notified.status_code == 202, notified.text
    return predictions


def _check_dashboard_sql(stack: MonitoredStack) -> dict[str, int]:
    """Run every SQL target of the dashboard over the last day; each must return rows (the
    model watch's within a few of its checks, once they have seen the feedback)."""
    now = datetime.now(UTC)
    rows = {}
    with psycopg.connect(stack.database_url, autocommit=True) as connection:
        for target in _dashboard_targets():
            if "rawSql" not in target:
                continue
            sql = expand(target["rawSql"], now - timedelta(days=1), now + timedelta(minutes=1))
            wait_until(lambda sql=sql: connection.execute(sql).fetchall(), 15, interval_s=0.5)
            found = connection.execute(sql).fetchall()
            rows[target["rawSql"].split("FROM")[0][:60]] = len(found)
            assert found, f"no rows for: {target['rawSql']}"
    return rows


def _check_dashboard_promql(prometheus: Prometheus) -> None:
    """Run every PromQL target of the dashboard as Grafana would; each must return data."""
    for target in _dashboard_targets():
        expr = target.get("expr")
        if expr is None:
            continue
        if target.get("instant"):
            result = prometheus.query(expr)
        else:
            result = prometheus.range(expr, seconds=60, step_s=5)
        if expr in EMPTY_WITHOUT_INCIDENT or any(
            name in expr for name in NEEDS_A_CANDIDATE + NEEDS_A_REFERENCE
        ):
            continue
        assert result, f"no data for: {expr}"


def _an_alert_resolves_in_its_own_message(stack: MonitoredStack) -> None:
    """An alert raised and resolved through Alertmanager's API (as Prometheus does) is one
    Discord message from the notifier, posted firing and edited to resolved."""
    probe = {
        "labels": {"alertname": "CVEndToEndProbe", "severity": "warning", "service": "e2e"},
        "annotations": {"summary": "A probe of the notifier's living messages."},
        "generatorURL": "http://prometheus.invalid/graph?g0.expr=vector(1)",
        "startsAt": (datetime.now(UTC) - timedelta(seconds=5)).isoformat(),
    }
    alerts_api = f"{stack.alertmanager_url}/api/v2/alerts"
    assert httpx.post(alerts_api, json=[probe], timeout=10).status_code == 200
    assert wait_until(lambda: stack.message_about("[FIRING] CVEndToEndProbe"), 60), (
        stack.discord_texts()
    )
    (firing,) = [m for m in stack.discord.messages() if "CVEndToEndProbe" in json.dumps(m)]
    assert "· notifier" in json.dumps(firing, ensure_ascii=False)
    resolved = {**probe, "endsAt": datetime.now(UTC).isoformat()}
    assert httpx.post(alerts_api, json=[resolved], timeout=10).status_code == 200
    assert wait_until(lambda: stack.message_about("[RESOLVED] CVEndToEndProbe"), 60), (
        stack.discord_texts()
    )
    (message,) = [m for m in stack.discord.messages() if "CVEndToEndProbe" in json.dumps(m)]
    assert message["id"] == firing["id"], "the resolution edits the firing message"
    assert message["edits"] >= 1
    assert message["content"].startswith("✅ **RESOLVED**")
    assert message["embeds"][0]["color"] == 0x2ECC71
    fields = {item["name"] for item in message["embeds"][0]["fields"]}
    assert {"Fired at", "Resolved at"} <= fields


def test_alerts_travel_from_real_conditions_to_discord_and_resolve(
    monitored_stack: MonitoredStack, postgres: PrivatePostgres
) -> None:
    stack = monitored_stack
    started = time.monotonic()
    prometheus, discord = stack.prometheus, stack.discord
    every_job = {"prometheus", "alertmanager", *ALL_SERVICES}
    assert wait_until(lambda: prometheus.up() == dict.fromkeys(every_job, 1.0), 30), prometheus.up()

    predictions = _traffic(stack)
    feedback = stack.services["feedback"].url
    with httpx.Client(timeout=30) as client:
        for prediction_id in predictions[:3]:
            _feedback(client, feedback, prediction_id, "satisfied")
        _feedback(client, feedback, predictions[3], "unsatisfied")
        # The unsatisfied series must be scraped once before the burst, or rate() misses it.
        assert wait_until(
            lambda: prometheus.query('cv_user_feedback_total{satisfaction="unsatisfied"}'), 30
        )
        for prediction_id in predictions[4:20]:
            _feedback(client, feedback, prediction_id, "unsatisfied")

    sql_rows = _check_dashboard_sql(stack)
    assert all(count > 0 for count in sql_rows.values())

    assert wait_until(
        lambda: prometheus.query('ALERTS{alertname="CVUnsatisfiedFeedbackSpike"}'), 60
    ), "the spike never became pending"
    assert wait_until(lambda: prometheus.query("job:cv_predictions_cat:ratio_avg7d"), 30)
    _check_dashboard_promql(prometheus)

    assert wait_until(lambda: stack.message_about("CVUnsatisfiedFeedbackSpike", "FIRING"), 150), (
        stack.discord_texts()
    )
    spike = stack.message_about("CVUnsatisfiedFeedbackSpike", "FIRING") or ""
    assert "Users are suddenly unhappy with the predictions." in spike
    # The share depends on which scrape saw the satisfied verdicts: over half, by definition.
    share = re.search(r"feedback: ([\d.]+)% of the feedback of the last 10 minutes", spike)
    assert share, spike
    assert 50 < float(share[1]) <= 100
    assert "warning" in spike
    assert "· notifier" in spike, "warnings travel through the notifier (its embed footer)"

    _an_alert_resolves_in_its_own_message(stack)

    postgres.stop("fast")
    # "[FIRING:1] name" is Alertmanager's own Discord title: the direct route, not the notifier.
    assert wait_until(
        lambda: stack.message_about("[FIRING:1] CVDatabaseDisconnected", "feedback"), 150
    ), stack.discord_texts()
    assert not stack.message_about("[RESOLVED] CVDatabaseDisconnected")

    postgres.start()
    assert wait_until(
        lambda: stack.message_about("[RESOLVED] CVDatabaseDisconnected", "feedback"), 180
    ), stack.discord_texts()
    elapsed = time.monotonic() - started
    print(f"end-to-end scenario: {elapsed:.0f} s, {len(discord.messages())} Discord messages")
