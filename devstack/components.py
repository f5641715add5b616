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


def service_components() -> list[Component]:
    """The services present in this checkout, in start order."""
    # Where a person starts: the upload page, the API docs, the dashboard's page.
    urls = {
        "inference": "http://localhost:8000/",
        "feedback": "http://localhost:8001/docs",
        "notifier": "http://localhost:8002/docs",
        "dashboard": "http://localhost:8050/monitoring/",
    }
    return [
        Component(
            name=name,
            command=[sys.executable, "-m", "services.common.serve", name],
            url=urls[name],
        )
        for name in SERVICE_ORDER
        if (REPO_ROOT / "services" / name / "app.py").exists()
    ]
