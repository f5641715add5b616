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


def service_components() -> list[Component]:
    """The services present in this checkout, in start order."""
    ports = {"inference": 8000, "feedback": 8001, "notifier": 8002, "dashboard": 8050}
    return [
        Component(
            name=name,
            command=[sys.executable, "-m", "services.common.serve", name],
            url=f"http://localhost:{ports[name]}",
        )
        for name in SERVICE_ORDER
        if (REPO_ROOT / "services" / name / "app.py").exists()
    ]
