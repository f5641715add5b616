"""The original guide's four queries, unchanged, and the headline numbers."""

from __future__ import annotations

from typing import Any

from monitoring.grafana.panels import (
    graph,
    promql,
    single,
)
from services.common.objectives import LIVE_ACCURACY_FLOOR, LIVE_ACCURACY_MIN_PREDICTIONS

TITLE = "Overview"


def panels() -> list[Any]:
    """The row's panels, in order."""
    return [
        single(
            "Live accuracy (feedback)",
            "Share of satisfied verdicts among predictions with feedback in the feedback "
            "service's window (each prediction once, latest verdict). "
            f"Alert under {LIVE_ACCURACY_FLOOR:.0%}.",
            promql("max(cv_feedback_accuracy_ratio)", "live accuracy"),
            unit="percentunit",
            steps=[(None, "red"), (LIVE_ACCURACY_FLOOR, "green")],
        ),
        single(
            "Predictions with feedback (window)",
            "How many predictions the live accuracy is computed from "
            f"(alerts need {LIVE_ACCURACY_MIN_PREDICTIONS}).",
            promql("max(cv_feedback_accuracy_predictions)", "predictions"),
            unit="short",
            steps=[(None, "orange"), (LIVE_ACCURACY_MIN_PREDICTIONS, "green")],
        ),
        single(
            "Scrape targets down",
            "Targets Prometheus cannot scrape now (CVTargetDown fires after 2 minutes).",
            promql("count(up == 0) or vector(0)", "down"),
            unit="short",
            steps=[(None, "green"), (1, "red")],
        ),
        single(
            "Firing alerts",
            "Alerts Prometheus is firing now (Alertmanager routes them to the notifier).",
            promql('count(ALERTS{alertstate="firing"}) or vector(0)', "firing"),
            unit="short",
            steps=[(None, "green"), (1, "red")],
        ),
        graph(
            "Predictions per second by class",
            "The guide's query: rate(cv_predictions_total[5m]).",
            promql("rate(cv_predictions_total[5m])", "{{result}} {{model_version}} ({{instance}})"),
            unit="reqps",
        ),
        graph(
            "Median inference time",
            "The guide's query: histogram_quantile(0.50, rate(cv_inference_time_seconds_bucket"
            "[5m])), per instance.",
            promql(
                "histogram_quantile(0.50, rate(cv_inference_time_seconds_bucket[5m]))",
                "p50 {{model_version}} ({{instance}})",
            ),
            unit="s",
        ),
        graph(
            "Cat share of predictions",
            "The guide's query: share of cat answers over 5 minutes.",
            promql(
                'sum(rate(cv_predictions_total{result="cat"}[5m])) '
                "/ sum(rate(cv_predictions_total[5m]))",
                "cat share",
            ),
            unit="percentunit",
        ),
        graph(
            "Unsatisfied feedback rate",
            'The guide\'s query: rate(cv_user_feedback_total{satisfaction="unsatisfied"}[10m]).',
            promql(
                'rate(cv_user_feedback_total{satisfaction="unsatisfied"}[10m])',
                "unsatisfied ({{instance}})",
            ),
            unit="reqps",
        ),
    ]
