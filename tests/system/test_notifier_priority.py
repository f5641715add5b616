"""M8: a flood of info messages cannot hold back a critical one, nor fill the outbox.

The fake Discord keeps Discord's own pace (5 requests per 2 s per webhook), and every route
shares the one webhook, as when only DISCORD_WEBHOOK_URL is set: the backlog is real.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.alert_payloads import alert, webhook
from harness.stack import Stack, running_stack, wait_for
from tests.system.test_notifier_faults import pending_rows

pytestmark = pytest.mark.slow

DISCORDS_PACE = (5, 2.0)


@contextlib.contextmanager
def paced_notifier(
    database_url: str, model_path: Path, work_dir: Path, **env: str
) -> Iterator[Stack]:
    with running_stack(
        database_url,
        model_path,
        work_dir,
        services=("notifier",),
        extra_env=env,
        discord_limit=DISCORDS_PACE,
    ) as stack:
        yield stack


def flood(name: str, alerts: int, severity: str = "info") -> dict[str, object]:
    """One Alertmanager webhook of `alerts` alerts in one group."""
    body = [
        alert(name, f"{name.lower()}-{n}", severity=severity, labels={"instance": f"i{n}"})
        for n in range(alerts)
    ]
    return webhook(body, group_key=f'{{}}:{{alertname="{name}"}}')


def titles_posted(stack: Stack) -> list[str]:
    """The first embed title of each message, in the order Discord received them."""
    return [
        message["embeds"][0].get("title", "") if message["embeds"] else message["content"]
        for message in stack.discord.messages()
    ]


def refusals(stack: Stack, source: str, severity: str) -> float:
    """`cv_notifier_requests_refused_total` of one caller kind and lane, from /metrics."""
    text = httpx.get(f"{stack.url('notifier')}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "cv_notifier_requests_refused_total" and sample.labels == {
                "source": source,
                "severity": severity,
            }:
                return sample.value
    return 0.0


def pending_of(database_url: str, source: str) -> int:
    with psycopg.connect(database_url) as connection:
        row = connection.execute(
            "SELECT count(*) FROM notifier_outbox WHERE state = 'pending' AND source = %s",
            (source,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_critical_notification_overtakes_a_backlog_of_info(
    database_url: str, model_path: Path, tmp_path: Path
) -> None:
    with paced_notifier(database_url, model_path, tmp_path) as stack:
        with httpx.Client(base_url=stack.url("notifier"), headers=stack.notifier_auth) as client:
            for n in range(300):
                info = {"title": f"backlog {n}", "level": "info"}
                assert client.post("/notify", json=info).status_code == 202
            storm = client.post("/alertmanager", json=flood("Storm", 5000), timeout=120)
            assert storm.status_code == 202
            assert storm.json()["messages"] >= 400
            queued_at = time.monotonic()
            critical = {"title": "Model serving down", "level": "critical"}
            assert client.post("/notify", json=critical).status_code == 202
        # Oldest first, it took the whole backlog's time at Discord's pace: 5 minutes.
        wait_for(
            lambda: any("Model serving down" in title for title in titles_posted(stack)),
            30,
            "the critical notification posted",
        )
        waited_s = time.monotonic() - queued_at
        backlog = pending_rows(database_url)
        position = next(
            i for i, title in enumerate(titles_posted(stack)) if "Model serving down" in title
        )
    assert backlog >= 600, f"the backlog had drained ({backlog} left): nothing was overtaken"
    assert waited_s < 15
    # Only what Discord took while the backlog was being queued went before it.
    assert position < 100


def test_one_caller_cannot_fill_a_lane_and_critical_always_gets_in(
    database_url: str, model_path: Path, tmp_path: Path
) -> None:
    cap = 20
    env = {"NOTIFIER_MAX_PENDING_PER_CALLER": str(cap)}
    with (
        paced_notifier(database_url, model_path, tmp_path, **env) as stack,
        httpx.Client(
            base_url=stack.url("notifier"), headers=stack.notifier_auth, timeout=60
        ) as client,
    ):
        answers = []
        for n in range(3 * cap):
            answers.append(client.post("/notify", json={"title": f"info {n}"}))
            if answers[-1].status_code != 202:
                break
        refused = answers[-1]
        assert refused.status_code == 429, "no cap: every info notification was queued"
        assert int(refused.headers["retry-after"]) > 0
        assert len(answers) > cap
        critical = {"title": "critical despite the flood", "level": "critical"}
        assert client.post("/notify", json=critical).status_code == 202
        # Alertmanager: a webhook is taken whole while its lane is under the cap, the next
        # one is refused, and a critical group is not.
        first = client.post("/alertmanager", json=flood("FloodA", 300))
        assert first.status_code == 202
        assert first.json()["messages"] > cap
        second = flood("FloodB", 30)
        refused = client.post("/alertmanager", json=second)
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) > 0
        down = flood("ServiceDown", 1, severity="critical")
        assert client.post("/alertmanager", json=down).status_code == 202
        assert refusals(stack, "notify", "info") == 1
        assert refusals(stack, "alertmanager", "info") == 1
        assert refusals(stack, "alertmanager", "critical") == 0
        # Nothing of the refused webhook was kept: once the lane has room, sent again (as
        # Alertmanager does at its next group_interval), it is queued whole, no duplicate.
        wait_for(
            lambda: pending_of(database_url, "alertmanager") < cap,
            90,
            "Alertmanager's info lane under its cap",
        )
        again = client.post("/alertmanager", json=second)
        assert again.status_code == 202
        assert again.json()["messages"] >= 1
        assert again.json()["duplicates"] == 0
