"""Prometheus and Alertmanager for `make run`: the project's configs, rendered for localhost.

`monitoring_components(data_dir)` is what `python -m devstack` starts beside the services. A
binary that is not installed is left out (with a note saying how to get it).
"""

from __future__ import annotations

import logging
import shutil
import urllib.parse
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from devstack.components import Component
from monitoring.render import local_targets, render_alertmanager, render_prometheus, write_private
from services.common.settings import DEV_NOTIFIER_TOKEN, require_secret

logger = logging.getLogger(__name__)

PROMETHEUS_BINARIES = ("prometheus",)
# Debian names the binary after its package; upstream tarballs call it alertmanager.
ALERTMANAGER_BINARIES = ("prometheus-alertmanager", "alertmanager")


class LocalSettings(BaseSettings):
    """What a local run reads from the environment or `.env` (documented in `.env.example`)."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    prometheus_url: str = Field(default="http://localhost:9090", description="Prometheus' URL.")
    alertmanager_url: str = Field(
        default="http://localhost:9093", description="Alertmanager's URL."
    )
    prometheus_public_url: str = Field(
        default="", description="Prometheus' address in alert links; empty: prometheus_url."
    )
    alertmanager_public_url: str = Field(
        default="", description="Alertmanager's address in alert links; empty: alertmanager_url."
    )
    notifier_token: SecretStr | None = Field(default=None, description="Notifier bearer token.")
    discord_webhook_url: SecretStr | None = Field(
        default=None, description="Where alerts that bypass the notifier are posted."
    )
    # `make run` is a local run: services.stack defaults DEV_MODE to true as well.
    dev_mode: bool = Field(default=True, description="Allows the development token.")
    inference_port: int = Field(default=8000, description="Port of the inference service.")
    feedback_port: int = Field(default=8001, description="Port of the feedback service.")
    notifier_port: int = Field(default=8002, description="Port of the notifier.")
    dashboard_port: int = Field(default=8050, description="Port of the dashboard.")

    def service_ports(self) -> dict[str, int]:
        """Each service's port, by name."""
        return {
            "inference": self.inference_port,
            "feedback": self.feedback_port,
            "notifier": self.notifier_port,
            "dashboard": self.dashboard_port,
        }


@lru_cache
def get_settings() -> LocalSettings:
    """Settings read once."""
    return LocalSettings()


def find_binary(names: tuple[str, ...]) -> str | None:
    """The first of `names` found on PATH."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


def port_of(url: str) -> int:
    """The port of an http(s) URL, explicit or implied."""
    parts = urllib.parse.urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def prometheus_command(binary: str, config: Path, storage: Path, port: int) -> list[str]:
    """Prometheus on 127.0.0.1 with a given config and storage folder."""
    return [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={storage}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=7d",
    ]


def alertmanager_command(binary: str, config: Path, storage: Path, port: int) -> list[str]:
    """A single Alertmanager on 127.0.0.1 (no cluster gossip port)."""
    return [
        binary,
        f"--config.file={config}",
        f"--storage.path={storage}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]


def monitoring_components(data_dir: Path) -> list[Component]:
    """Prometheus and Alertmanager with the project's config, the ones installed."""
    settings = get_settings()
    rendered = data_dir / "monitoring"
    components: list[Component] = []
    prometheus = find_binary(PROMETHEUS_BINARIES)
    alertmanager = find_binary(ALERTMANAGER_BINARIES)
    prometheus_port = port_of(settings.prometheus_url)
    alertmanager_port = port_of(settings.alertmanager_url)

    if prometheus is None:
        logger.warning("prometheus not installed: see docs/monitoring.md to get it")
    else:
        targets = local_targets(
            ports={
                "prometheus": prometheus_port,
                "alertmanager": alertmanager_port,
                **settings.service_ports(),
            }
        )
        config = write_private(rendered / "prometheus.yml", render_prometheus(targets))
        components.append(
            Component(
                "prometheus",
                prometheus_command(prometheus, config, data_dir / "prometheus", prometheus_port),
                settings.prometheus_url,
                log_to_file=True,
                port=prometheus_port,
                port_variable="PROMETHEUS_URL",
                essential=False,
            )
        )

    if alertmanager is None:
        logger.warning("alertmanager not installed: see docs/monitoring.md to get it")
        return components
    token = settings.notifier_token.get_secret_value() if settings.notifier_token else None
    token = require_secret("NOTIFIER_TOKEN", token, dev_mode=settings.dev_mode)
    config = write_private(
        rendered / "alertmanager.yml",
        render_alertmanager(
            notifier_token=token or DEV_NOTIFIER_TOKEN,
            notifier_url=f"http://127.0.0.1:{settings.notifier_port}",
            discord_webhook_url=(
                settings.discord_webhook_url.get_secret_value()
                if settings.discord_webhook_url
                else None
            ),
        ),
    )
    components.append(
        Component(
            "alertmanager",
            alertmanager_command(
                alertmanager, config, data_dir / "alertmanager", alertmanager_port
            ),
            settings.alertmanager_url,
            log_to_file=True,
            port=alertmanager_port,
            port_variable="ALERTMANAGER_URL",
            essential=False,
        )
    )
    return components
