"""Alerts travel Alertmanager -> notifier -> Discord through a crashed notifier and a Discord
that answers 429 and 503 for a minute: every alert is posted once, each group in order."""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from harness.stack import Stack, running_stack, wait_for

pytestmark = pytest.mark.slow

_ALERT_ID = re.compile(r"(?P<test>[a-z]+)-g(?P<group>\d+)-a(?P<alert>\d+)")
STORM_PHASE_S = 30.0


@pytest.fixture(scope="module")
def relay(
    module_database: str, model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The notifier behind the real Alertmanager, posting to the fake Discord."""
    with running_stack(
        module_database,
        model_path,
        tmp_path_factory.mktemp("relay"),
        services=("notifier",),
        monitoring=True,
        prometheus=False,
    ) as running:
        yield running


def raise_alerts(stack: Stack, test: str, group: int, alert: int) -> None:
    """Post one alert to Alertmanager, as Prometheus does."""
    assert stack.alertmanager is not None
    body = [
        {
            "labels": {
                "alertname": f"{test.capitalize()}Group{group}",
                "severity": "warning",
                "service": "system-test",
                "instance": f"{test}-g{group}-a{alert}",
            },
            "annotations": {"summary": f"alert {alert} of group {group}"},
            "generatorURL": "http://prometheus.invalid/graph",
        }
    ]
    response = httpx.post(f"{stack.alertmanager.url}/api/v2/alerts", json=body, timeout=10)
    response.raise_for_status()


def posted(stack: Stack, test: str) -> list[tuple[int, int, int]]:
    """(message index, group, alert) of every alert embed Discord accepted for `test`."""
    found = []
    for index, message in enumerate(stack.discord.messages()):
        for embed in message["embeds"]:
            match = _ALERT_ID.search(json.dumps(embed))
            if match and match["test"] == test:
                found.append((index, int(match["group"]), int(match["alert"])))
    return found


def pending_alert_embeds(database_url: str) -> int:
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "SELECT payload FROM notifier_outbox WHERE state = 'pending'"
        ).fetchall()
    return sum(len(payload.get("embeds", [])) for (payload,) in rows)


def pending_rows(database_url: str) -> int:
    with psycopg.connect(database_url) as connection:
        row = connection.execute(
            "SELECT count(*) FROM notifier_outbox WHERE state = 'pending'"
        ).fetchone()
    assert row is not None
    return int(row[0])


def assert_each_once_in_group_order(
    found: list[tuple[int, int, int]], groups: int, alerts: int
) -> None:
    identities = [(group, alert) for _, group, alert in found]
    duplicates = {item for item in identities if identities.count(item) > 1}
    assert not duplicates, f"posted more than once: {sorted(duplicates)}"
    expected = {(g, a) for g in range(groups) for a in range(alerts)}
    assert set(identities) == expected, f"missing: {sorted(expected - set(identities))}"
    by_group: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for index, group, alert in found:
        by_group[group].append((alert, index))
    for group, items in by_group.items():
        message_order = [index for _, index in sorted(items)]
        assert message_order == sorted(message_order), f"group {group} out of order: {items}"


def test_notifier_killed_with_a_full_outbox_posts_everything_once(
    relay: Stack, module_database: str
) -> None:
    groups, alerts = 6, 4
    relay.discord.reset()
    relay.discord.fail("status", seconds=600, status=503)
    for alert in range(alerts):
        for group in range(groups):
            raise_alerts(relay, "kill", group, alert)
        # Each round reaches Alertmanager after the group's previous notification went out.
        wait_for(
            lambda n=alert: pending_alert_embeds(module_database) >= groups * (n + 1),
            30,
            f"round {alert} queued in the outbox",
        )
    notifier = relay.services["notifier"]
    notifier.stop(signal.SIGKILL)
    relay.discord.heal()
    notifier.start()
    wait_for(lambda: len(posted(relay, "kill")) >= groups * alerts, 60, "every alert posted")
    wait_for(lambda: pending_rows(module_database) == 0, 30, "an empty outbox")
    assert_each_once_in_group_order(posted(relay, "kill"), groups, alerts)


def test_alert_storm_through_a_minute_of_429_and_503_is_delivered_in_order(
    relay: Stack, module_database: str
) -> None:
    groups, alerts = 12, 4
    relay.discord.reset()
    # Each phase is commanded to outlast its turn, so the switch leaves no gap to slip through.
    relay.discord.fail("rate_limit", seconds=STORM_PHASE_S + 10)
    started = time.monotonic()

    def storm() -> None:
        for alert in range(alerts):
            for group in range(groups):
                raise_alerts(relay, "storm", group, alert)
            time.sleep(3)  # longer than the group interval: a new notification per round

    sender = threading.Thread(target=storm)
    sender.start()
    wait_for(lambda: time.monotonic() - started >= STORM_PHASE_S, STORM_PHASE_S + 1, "429 phase")
    relay.discord.fail("status", seconds=3600, status=503)
    sender.join()
    wait_for(lambda: time.monotonic() - started >= 2 * STORM_PHASE_S, STORM_PHASE_S, "503 phase")
    assert not posted(relay, "storm"), "nothing can be accepted while Discord refuses"
    relay.discord.heal()
    wait_for(lambda: len(posted(relay, "storm")) >= groups * alerts, 120, "the storm delivered")
    wait_for(lambda: pending_rows(module_database) == 0, 30, "an empty outbox")
    refused = [r.status for r in relay.discord.requests() if r.status in (429, 503)]
    assert 429 in refused and 503 in refused, "both kinds of refusal were met"
    assert_each_once_in_group_order(posted(relay, "storm"), groups, alerts)
