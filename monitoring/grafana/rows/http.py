"""Requests, errors and latency of every service, and the error budget."""

from __future__ import annotations

from typing import Any

from monitoring.grafana.panels import (
    graph,
    promql,
)
from services.common.objectives import ERROR_BUDGET, FAST_BURN_RATES

TITLE = "HTTP by service"


def panels() -> list[Any]:
    """The row's panels, in order."""
    return [
        graph(
            "Requests per second",
            "Per service and route template.",
            promql("sum by (job, handler) (rate(http_requests_total[5m]))", "{{job}} {{handler}}"),
            unit="reqps",
            width=8,
        ),
        graph(
            "Errors per second",
            "4xx are the clients' mistakes; 5xx are ours and burn the error budget.",
            promql(
                'sum by (job, status) (rate(http_requests_total{status=~"4xx|5xx"}[5m]))',
                "{{job}} {{status}}",
            ),
            unit="reqps",
            width=8,
        ),
        graph(
            "Latency p95",
            "Per service, all routes.",
            promql("job:http_request_duration_seconds:p95_rate5m", "{{job}}"),
            unit="s",
            width=8,
        ),
        graph(
            "Error-budget burn rate",
            f"5xx ratio divided by the {ERROR_BUDGET:.1%} budget: 1 spends it in exactly 30 days; "
            f"the fast alert pages at {FAST_BURN_RATES[0]:g} (1 h and 5 min) or "
            f"{FAST_BURN_RATES[1]:g} (6 h and 30 min).",
            promql(f"job:http_request_errors:ratio_rate1h / {ERROR_BUDGET}", "{{job}} 1 h"),
            promql(f"job:http_request_errors:ratio_rate5m / {ERROR_BUDGET}", "{{job}} 5 min"),
            unit="short",
            width=24,
        ),
    ]
