"""Fixtures for the monitoring tests: the real Prometheus and Alertmanager tools, and a whole
monitored stack (services, Prometheus, Alertmanager, notifier, fake Discord).

`monitored_stack` is shaped by fixtures a test module may override: `stack_database_url`
(default: the test's own database on the shared server), `stack_services` (default: all four)
and `stack_env` (default: the tiny model).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.fake_discord import FakeDiscord
from harness.monitoring import INSTALL_HINT, Alertmanager, Prometheus
from harness.monitoring import alertmanager_binary as find_alertmanager
from harness.monitoring import prometheus_binary as find_prometheus
from harness.ports import free_port
from harness.services import ServiceProcess
from monitoring.render import render_alertmanager, render_prometheus

STACK_TOKEN = "e2e-notifier-token"
ALL_SERVICES = ("notifier", "inference", "feedback", "dashboard")


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} not installed: {INSTALL_HINT}")
    return found


@pytest.fixture(scope="session")
def promtool() -> str:
    """Path of promtool (skips with the reason when it is missing)."""
    return _tool("promtool")


@pytest.fixture(scope="session")
def amtool() -> str:
    """Path of amtool (skips with the reason when it is missing)."""
    return _tool("amtool")


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    """Path of the Prometheus server."""
    found = find_prometheus()
    if found is None:
        pytest.skip(f"prometheus not installed: {INSTALL_HINT}")
    return found


@pytest.fixture(scope="session")
def alertmanager_binary() -> str:
    """Path of the Alertmanager server, under Debian's name or upstream's."""
    found = find_alertmanager()
    if found is None:
        pytest.skip(f"alertmanager not installed: {INSTALL_HINT}")
    return found


@dataclass
class MonitoredStack:
    """Everything an end-to-end scenario talks to."""

    database_url: str
    services: dict[str, ServiceProcess]
    prometheus: Prometheus
    alertmanager_url: str
    discord: FakeDiscord

    def discord_texts(self) -> list[str]:
        """Each accepted message flattened to one string (content, titles, descriptions,
        fields)."""
        return [json.dumps(message, ensure_ascii=False) for message in self.discord.messages()]

    def message_about(self, *needles: str) -> str | None:
        """The first accepted message holding every needle, flattened."""
        for text in self.discord_texts():
            if all(needle in text for needle in needles):
                return text
        return None


@pytest.fixture
def stack_database_url(database_url: str) -> str:
    """The migrated database the stack's services share."""
    return database_url


@pytest.fixture
def stack_services() -> tuple[str, ...]:
    """The services the stack runs (the notifier always: Alertmanager posts to it)."""
    return ALL_SERVICES


@pytest.fixture
def stack_env(tiny_model_path: Path) -> dict[str, str]:
    """Environment added to (or overriding) the stack's for every service."""
    return {"MODEL_PATH": str(tiny_model_path)}


@pytest.fixture
def monitored_stack(
    tmp_path: Path,
    stack_database_url: str,
    stack_services: tuple[str, ...],
    stack_env: Mapping[str, str],
    prometheus_binary: str,
    alertmanager_binary: str,
) -> Iterator[MonitoredStack]:
    """The services, a real Alertmanager (the project's routing to the notifier, short group
    timers) and a real Prometheus (the project's config and rules, scraping and evaluating
    every second), with a fake Discord behind both the notifier and the direct route.

    Jobs of services left out keep their committed targets, which do not resolve here: they
    are down, as they would be.
    """
    if "notifier" not in stack_services:
        raise ValueError("the stack needs the notifier: Alertmanager's routes lead to it")
    with ExitStack() as running:
        discord = FakeDiscord(limit=100).start()
        running.callback(discord.stop)
        env = {
            "DATABASE_URL": stack_database_url,
            "DEV_MODE": "true",
            "LOG_LEVEL": "INFO",
            "DB_PROBE_INTERVAL_S": "0.5",
            "DB_CONNECT_TIMEOUT_S": "1",
            "NOTIFIER_TOKEN": STACK_TOKEN,
            "DISCORD_WEBHOOK_URL": discord.webhook_url(),
            "NOTIFIER_POLL_S": "0.2",
            "NOTIFIER_STATS_INTERVAL_S": "1",
            "ACCURACY_REFRESH_S": "1",
            **stack_env,
        }
        services = {}
        # The notifier first, so that Alertmanager's receivers answer from the start.
        for name in sorted(stack_services, key=lambda name: name != "notifier"):
            services[name] = ServiceProcess(name, env, tmp_path).start()
            running.callback(services[name].stop)
        alertmanager = Alertmanager(
            render_alertmanager(
                notifier_token=STACK_TOKEN,
                notifier_url=services["notifier"].url,
                discord_webhook_url=discord.webhook_url(),
                timings={"group_wait": "1s", "group_interval": "2s"},
            ),
            tmp_path,
        ).start()
        running.callback(alertmanager.stop)
        prometheus_port = free_port()
        targets = {name: f"127.0.0.1:{service.port}" for name, service in services.items()}
        targets |= {
            "prometheus": f"127.0.0.1:{prometheus_port}",
            "alertmanager": f"127.0.0.1:{alertmanager.port}",
        }
        prometheus = Prometheus(
            render_prometheus(targets, scrape_interval="1s", evaluation_interval="1s"),
            tmp_path,
            port=prometheus_port,
        ).start()
        running.callback(prometheus.stop)
        yield MonitoredStack(
            database_url=stack_database_url,
            services=services,
            prometheus=prometheus,
            alertmanager_url=alertmanager.url,
            discord=discord,
        )
