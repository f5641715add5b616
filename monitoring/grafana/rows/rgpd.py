"""Consent, the owners' rights and retention (feedback service)."""

from __future__ import annotations

from typing import Any

from monitoring.grafana.panels import (
    graph,
    promql,
)
from services.common.objectives import RETENTION_STALE_S

TITLE = "Feedback and RGPD"


def panels() -> list[Any]:
    """The row's panels, in order."""
    return [
        graph(
            "Feedback by consent",
            "Accepted feedback per second; without consent it is counted, not stored.",
            promql("sum by (consent) (rate(cv_feedback_consent_total[5m]))", "consent={{consent}}"),
            unit="reqps",
            width=8,
        ),
        graph(
            "Rights exercised and retention runs (1 h)",
            "Erasures and access requests by their owners; retention purges by outcome.",
            promql("sum(increase(cv_rgpd_erasures_total[1h]))", "erasures"),
            promql("sum(increase(cv_rgpd_access_requests_total[1h]))", "access requests"),
            promql("sum by (outcome) (increase(cv_retention_runs_total[1h]))", "purge {{outcome}}"),
            unit="short",
            width=8,
        ),
        graph(
            "Time since the last retention purge",
            f"CVRetentionStale fires past {RETENTION_STALE_S // 3600} hours.",
            promql(
                "time() - max by (job) (cv_retention_last_success_timestamp_seconds)", "{{job}}"
            ),
            unit="s",
            width=8,
        ),
    ]
