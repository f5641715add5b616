"""Every link of an alert's Discord message opens a page of the monitoring tools installed.

A real Prometheus fires a rule, a real Alertmanager routes it to the notifier, the notifier
posts it to a fake Discord. Prometheus names itself by its host name in the alert (no
`--web.external-url`, as `make run` starts it), and Debian's builds serve other pages than
upstream's: the classic UI only, and an Alertmanager without its web application.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.fake_discord import FakeDiscord
from harness.monitoring import Alertmanager, Prometheus, run_tool
from harness.ports import free_port
from harness.services import ServiceProcess
from monitoring.render import render_alertmanager

TOKEN = "links-notifier-token"
RULES = """
groups:
  - name: links
    rules:
      - alert: CVLinkCheck
        expr: vector(1)
        # Fired only once Prometheus has found Alertmanager (an alert sent before is dropped
        # and only sent again a minute later); it finds it within 5 s (its discovery batches).
        for: 10s
        labels: {severity: warning, service: inference}
        annotations: {summary: Always firing.}
"""
_MARKDOWN_LINK = re.compile(r"\[[^\]]+\]\((https?://[^)\s]+)\)")
_AMTOOL = re.compile(r"`(amtool silence add [^`]+)`")

pytestmark = pytest.mark.timeout(180)


@dataclass
class AlertingStack:
    """The tools a Discord message links to, and the message."""

    prometheus: Prometheus
    alertmanager: Alertmanager
    message: dict[str, Any]


@pytest.fixture
def alerting_stack(
    tmp_path: Path, database_url: str, prometheus_binary: str, alertmanager_binary: str
) -> Iterator[AlertingStack]:
    """One alert fired by Prometheus, through Alertmanager and the notifier, on Discord."""
    prometheus_port, alertmanager_port = free_port(), free_port()
    with FakeDiscord() as discord:
        notifier = ServiceProcess(
            "notifier",
            {
                "DATABASE_URL": database_url,
                "NOTIFIER_TOKEN": TOKEN,
                "DISCORD_WEBHOOK_URL": discord.webhook_url(),
                "NOTIFIER_POLL_S": "0.2",
                "PROMETHEUS_PUBLIC_URL": f"http://127.0.0.1:{prometheus_port}",
                "ALERTMANAGER_PUBLIC_URL": f"http://127.0.0.1:{alertmanager_port}",
            },
            tmp_path,
        )
        rules = tmp_path / "links.yml"
        rules.write_text(RULES)
        targets = {"targets": [f"127.0.0.1:{alertmanager_port}"]}
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "alerting": {"alertmanagers": [{"static_configs": [targets]}]},
        }
        alertmanager_config = render_alertmanager(
            notifier_token=TOKEN,
            notifier_url=f"http://127.0.0.1:{notifier.port}",
            timings={"group_wait": "1s", "group_interval": "2s"},
        )
        with (
            notifier,
            Alertmanager(alertmanager_config, tmp_path, port=alertmanager_port) as alertmanager,
            Prometheus(json.dumps(config), tmp_path, port=prometheus_port) as prometheus,
        ):
            (message,) = discord.wait_for_messages(1, timeout_s=60)
            yield AlertingStack(prometheus, alertmanager, message)


def _texts(message: dict[str, Any]) -> list[str]:
    texts = [message.get("content", "")]
    for embed in message["embeds"]:
        texts.append(embed.get("url", ""))
        texts.extend(field["value"] for field in embed.get("fields", []))
    return texts


def test_every_link_in_an_alert_message_opens_an_existing_page(
    alerting_stack: AlertingStack, amtool: str
) -> None:
    texts = _texts(alerting_stack.message)
    links = [url for text in texts for url in _MARKDOWN_LINK.findall(text)]
    links += [embed["url"] for embed in alerting_stack.message["embeds"] if "url" in embed]
    assert links, texts
    for url in links:
        # The page itself: a redirect would drop the query (Debian's /graph sends to /graph/).
        response = httpx.get(url, follow_redirects=False, timeout=10)
        assert response.status_code == 200, f"{url}: {response.status_code}"
        assert url.startswith((alerting_stack.prometheus.url, alerting_stack.alertmanager.url)), (
            f"{url} is not on the configured public addresses"
        )
    graphs = [url for url in links if url.startswith(alerting_stack.prometheus.url)]
    assert graphs and all("g0.expr=vector" in url for url in graphs), graphs


def test_a_silence_is_offered_in_a_form_the_installed_alertmanager_takes(
    alerting_stack: AlertingStack, amtool: str
) -> None:
    alertmanager = alerting_stack.alertmanager.url
    has_ui = httpx.get(f"{alertmanager}/script.js", timeout=10).status_code == 200
    texts = "\n".join(_texts(alerting_stack.message))
    commands = _AMTOOL.findall(texts)
    if has_ui:
        assert f"{alertmanager}/#/silences/new?filter=" in texts
        return
    assert "/#/silences" not in texts, "a link to a web application that is not installed"
    assert len(commands) == 1, texts
    # The command as posted, run against the real Alertmanager, makes the silence.
    argv = shlex.split(commands[0])
    outcome = run_tool(amtool, *argv[1:])
    assert outcome.returncode == 0, outcome.stderr
    silences = httpx.get(f"{alertmanager}/api/v2/silences", timeout=10).json()
    matchers = [{(m["name"], m["value"]) for m in s["matchers"]} for s in silences]
    assert {("alertname", "CVLinkCheck"), ("service", "inference")} in matchers, silences
