"""The whole system as real processes: services, fake Discord, Prometheus and Alertmanager.

Used by the system tests (through `conftest.py`) and by `bench/soak.py`. Configuration comes
from the project's own files: services read the environment `make run` gives them, Prometheus
and Alertmanager run the committed configs rendered by `monitoring.render`.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from harness.fake_discord import FakeDiscord
from harness.monitoring import Alertmanager, Prometheus
from harness.ports import free_port
from harness.services import ServiceProcess
from harness.waiting import wait_until
from monitoring.render import render_alertmanager, render_prometheus

SERVICES = ("inference", "feedback", "notifier", "dashboard")
DASHBOARD_USER = "monitoring"


@dataclass(frozen=True)
class Secrets:
    """Distinctive secret values, so that a leak of any of them can be searched for."""

    notifier_token: str
    admin_token: str
    inference_admin_token: str
    dashboard_password: str
    webhook_token: str
    database_password: str

    @classmethod
    def generate(cls) -> Secrets:
        """Fresh values, each with a recognisable prefix."""
        return cls(
            notifier_token=f"ntfy-{secrets.token_hex(12)}",
            admin_token=f"admn-{secrets.token_hex(12)}",
            inference_admin_token=f"iadm-{secrets.token_hex(12)}",
            dashboard_password=f"dpw-{secrets.token_hex(12)}",
            webhook_token=f"whk-{secrets.token_hex(16)}",
            database_password=f"dbpw{secrets.token_hex(10)}",
        )

    def values(self) -> dict[str, str]:
        """Name -> value, for scans."""
        return dict(vars(self))


def with_password(url: str, password: str) -> str:
    """The DSN with a password added (the test servers trust local users and ignore it)."""
    parts = urlsplit(url)
    user = parts.username or "postgres"
    # No host in the netloc means a Unix socket named by `?host=` (the embedded server): keep it.
    host = parts.hostname or ""
    netloc = f"{user}:{password}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def service_env(
    database_url: str,
    model_path: Path,
    secrets_: Secrets,
    webhook_url: str,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment every service of the stack gets (production mode, short pauses)."""
    env = {
        "DEV_MODE": "false",
        "DATABASE_URL": with_password(database_url, secrets_.database_password),
        "MODEL_PATH": str(model_path),
        "LOG_LEVEL": "INFO",
        "DB_PROBE_INTERVAL_S": "0.5",
        "DB_CONNECT_TIMEOUT_S": "1",
        "FEEDBACK_ADMIN_TOKEN": secrets_.admin_token,
        "INFERENCE_ADMIN_TOKEN": secrets_.inference_admin_token,
        "NOTIFIER_TOKEN": secrets_.notifier_token,
        "DASHBOARD_PASSWORD": secrets_.dashboard_password,
        "DISCORD_WEBHOOK_URL": webhook_url,
        "NOTIFIER_POLL_S": "0.2",
        "NOTIFIER_RETRY_BASE_S": "0.2",
        "NOTIFIER_RETRY_MAX_S": "2",
        "NOTIFIER_STATS_INTERVAL_S": "0.5",
        "NOTIFIER_LEASE_S": "5",
        "NOTIFIER_CONFIG_ERROR_RETRY_S": "2",
        "ACCURACY_REFRESH_S": "1",
        "PREDICTION_WAIT_S": "2",
    }
    env.update(extra or {})
    return env


@dataclass
class Stack:
    """Running services (and, when asked, monitoring) with the secrets they were given."""

    services: dict[str, ServiceProcess]
    discord: FakeDiscord
    secrets: Secrets
    database_url: str
    log_dir: Path
    prometheus: Prometheus | None = None
    alertmanager: Alertmanager | None = None
    extra_logs: list[Path] = field(default_factory=list)

    def url(self, name: str) -> str:
        """Base URL of a service."""
        return self.services[name].url

    @property
    def notifier_auth(self) -> dict[str, str]:
        """Headers carrying the notifier's token."""
        return {"Authorization": f"Bearer {self.secrets.notifier_token}"}

    @property
    def admin_auth(self) -> dict[str, str]:
        """Headers carrying feedback's admin token."""
        return {"Authorization": f"Bearer {self.secrets.admin_token}"}

    @property
    def inference_admin_auth(self) -> dict[str, str]:
        """Headers carrying the inference service's admin token (the model registry)."""
        return {"Authorization": f"Bearer {self.secrets.inference_admin_token}"}

    @property
    def dashboard_auth(self) -> tuple[str, str]:
        """The dashboard's basic-auth login."""
        return (DASHBOARD_USER, self.secrets.dashboard_password)

    def log_files(self) -> list[Path]:
        """Every log file written by the stack's processes."""
        files = sorted(self.log_dir.glob("*.log")) + list(self.extra_logs)
        for part in (self.prometheus, self.alertmanager):
            if part is not None:
                files.append(part.log_path)
        return [path for path in files if path.exists()]


@contextlib.contextmanager
def running_stack(
    database_url: str,
    model_path: Path,
    work_dir: Path,
    *,
    monitoring: bool = False,
    services: tuple[str, ...] = SERVICES,
    extra_env: Mapping[str, str] | None = None,
    per_service_env: Mapping[str, Mapping[str, str]] | None = None,
    inference_workers: int = 1,
    prometheus: bool = True,
    announce: bool = False,
    discord_limit: tuple[int, float] = (50, 1.0),
) -> Iterator[Stack]:
    """Start the services (and Alertmanager, and Prometheus unless told not to), stop them all.

    With `announce`, the other services post their own events (a start, a model swap, a
    rollback) through the notifier, as in production. The fake Discord accepts
    `discord_limit` (requests, per seconds) per webhook: generous by default, `(5, 2.0)` is
    Discord's own.
    """
    secrets_ = Secrets.generate()
    log_dir = work_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    discord = FakeDiscord(limit=discord_limit[0], window_s=discord_limit[1]).start()
    webhook = discord.webhook_url("424242424242424242", secrets_.webhook_token)
    env = service_env(
        database_url,
        model_path,
        secrets_,
        webhook,
        {"MODEL_STORE_DIR": str(work_dir / "model-store"), **(extra_env or {})},
    )
    processes: dict[str, ServiceProcess] = {}
    stack = Stack(processes, discord, secrets_, database_url, log_dir)
    try:
        for name in services:
            workers = inference_workers if name == "inference" else 1
            processes[name] = ServiceProcess(
                name, {**env, **(per_service_env or {}).get(name, {})}, log_dir, workers=workers
            )
        if announce and "notifier" in processes:
            for name, process in processes.items():
                if name != "notifier":
                    process.env["NOTIFIER_URL"] = processes["notifier"].url
        # Started side by side: each waits for its own /health, most of it importing.
        with ThreadPoolExecutor(len(processes)) as pool:
            list(pool.map(lambda process: process.start(), processes.values()))
        if monitoring:
            stack.alertmanager = Alertmanager(
                render_alertmanager(
                    notifier_token=secrets_.notifier_token,
                    notifier_url=processes["notifier"].url,
                    discord_webhook_url=webhook,
                    timings={"group_wait": "1s", "group_interval": "2s", "repeat_interval": "1h"},
                ),
                work_dir,
            ).start()
            targets = {name: f"127.0.0.1:{processes[name].port}" for name in processes}
            targets["alertmanager"] = f"127.0.0.1:{stack.alertmanager.port}"
            if prometheus:
                port = free_port()
                config = render_prometheus(
                    {**targets, "prometheus": f"127.0.0.1:{port}"},
                    scrape_interval="1s",
                    evaluation_interval="1s",
                )
                stack.prometheus = Prometheus(config, work_dir, port=port).start()
        yield stack
    finally:
        for part in (stack.prometheus, stack.alertmanager):
            if part is not None:
                part.stop()
        for process in processes.values():
            process.stop()
        discord.stop()


def wait_for(condition: Any, timeout_s: float, what: str, interval_s: float = 0.2) -> None:
    """Poll until `condition()` holds; fail the test saying what was awaited."""
    if not wait_until(condition, timeout_s=timeout_s, interval_s=interval_s):
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
