"""What is firing now."""

from __future__ import annotations

from typing import Any

from monitoring.grafana.panels import (
    PROMETHEUS,
    grid,
    promql,
)

TITLE = "Alerts"


def panels() -> list[Any]:
    """The row's panels, in order."""
    return [
        grid(
            "Alerts firing or pending",
            "From Prometheus' ALERTS series; runbooks in monitoring/runbook.md.",
            promql("ALERTS", "{{alertname}}", instant=True),
            datasource=PROMETHEUS,
            width=24,
        ),
    ]
