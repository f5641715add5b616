"""The relay that carries alerts to Discord."""

from __future__ import annotations

from typing import Any

from monitoring.grafana.panels import (
    graph,
    promql,
)
from services.common.objectives import NOTIFIER_BACKLOG_S

TITLE = "Notifier (alerts to Discord)"


def panels() -> list[Any]:
    """The row's panels, in order."""
    return [
        graph(
            "Messages per second",
            "Queued into the outbox, and delivered to Discord.",
            promql("sum(rate(cv_notifier_messages_queued_total[5m]))", "queued"),
            promql("sum(rate(cv_notifier_messages_delivered_total[5m]))", "delivered"),
            unit="reqps",
            width=6,
        ),
        graph(
            "Discord requests by outcome",
            "Delivered, rate limited, transient or configuration errors, rejected.",
            promql(
                "sum by (outcome) (rate(cv_notifier_delivery_attempts_total[5m]))", "{{outcome}}"
            ),
            promql(
                "sum by (reason) (increase(cv_notifier_messages_dropped_total[1h]))",
                "dropped (1 h): {{reason}}",
            ),
            unit="reqps",
            width=6,
        ),
        graph(
            "Outbox",
            "Pending messages and the age of the oldest (CVNotifierBacklog over "
            f"{NOTIFIER_BACKLOG_S // 60} minutes).",
            promql("max(cv_notifier_queue_depth)", "pending messages"),
            promql("max(cv_notifier_oldest_queued_age_seconds)", "oldest age (s)"),
            unit="short",
            width=6,
        ),
        graph(
            "Discord latency p95 and webhook state",
            "Request time to Discord; webhook misconfigured is 1 while Discord refuses it.",
            promql(
                "histogram_quantile(0.95, sum by (le) "
                "(rate(cv_notifier_discord_request_seconds_bucket[5m])))",
                "p95 (s)",
            ),
            promql("max(cv_notifier_webhook_misconfigured)", "webhook misconfigured"),
            unit="short",
            width=6,
        ),
    ]
