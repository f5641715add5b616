"""The processes of the local stack: the services present in this checkout, and Prometheus and
Alertmanager (`devstack.monitoring`) when their binaries are installed."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / ".data"
SERVICE_ORDER = ("notifier", "inference", "feedback", "dashboard")


@dataclass
class Component:
    """One process of the stack."""

    name: str
    command: list[str]
    url: str
    env: dict[str, str] = field(default_factory=dict)
    # Its own log format, not ours: on a terminal it goes to .data/logs/<name>.log instead.
    log_to_file: bool = False
    # The TCP port it binds, and the variable that chooses another (checked before starting).
    port: int | None = None
    port_variable: str = ""
    # The services stop with it; the monitoring tools may die alone.
    essential: bool = True


def service_components(ports: dict[str, int]) -> list[Component]:
    """The services present in this checkout, in start order, on `ports` (by service name)."""
    # Where a person starts: the upload page, the API docs, the dashboard's page.
    paths = {
        "inference": "/",
        "feedback": "/docs",
        "notifier": "/docs",
        "dashboard": "/monitoring/",
    }
    return [
        Component(
            name=name,
            command=[sys.executable, "-m", "services.common.serve", name],
            url=f"http://localhost:{ports[name]}{paths[name]}",
            port=ports[name],
            port_variable=f"{name.upper()}_PORT",
        )
        for name in SERVICE_ORDER
        if (REPO_ROOT / "services" / name / "app.py").exists()
    ]
