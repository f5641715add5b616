"""What the model does and what users think of it: accuracy and drift."""

from __future__ import annotations

from typing import Any

from monitoring.grafana.panels import (
    PROMETHEUS,
    graph,
    grid,
    promql,
)
from services.common.objectives import CAT_SHARE_DRIFT, LOW_CONFIDENCE, LOW_CONFIDENCE_DRIFT

TITLE = "Model quality and drift"


def panels() -> list[Any]:
    """The row's panels, in order."""
    return [
        graph(
            "Live accuracy",
            "From the feedback service (PostgreSQL, each prediction once) and from the feedback "
            "counters over 1 h (every verdict).",
            promql("cv_feedback_accuracy_ratio", "feedback service ({{instance}})"),
            promql("job:cv_user_feedback_satisfied:ratio_rate1h", "satisfied share, 1 h"),
            unit="percentunit",
        ),
        graph(
            "Feedback by verdict",
            "Verdicts per second over 5 minutes.",
            promql("sum by (satisfaction) (rate(cv_user_feedback_total[5m]))", "{{satisfaction}}"),
            unit="reqps",
        ),
        graph(
            "Prediction drift: cat share vs its 7-day baseline",
            f"CVPredictionDrift fires when the two are more than {CAT_SHARE_DRIFT:.2f} apart for "
            "30 minutes.",
            promql("job:cv_predictions_cat:ratio_rate1h", "last hour"),
            promql("job:cv_predictions_cat:ratio_avg7d", "7-day average"),
            unit="percentunit",
        ),
        graph(
            f"Confidence drift: share of answers under {LOW_CONFIDENCE:g} confidence",
            f"CVConfidenceDrift fires when the last hour is {LOW_CONFIDENCE_DRIFT:.2f} above the "
            "7-day average.",
            promql("job:cv_model_confidence_low:ratio_rate1h", "last hour"),
            promql("job:cv_model_confidence_low:ratio_avg7d", "7-day average"),
            unit="percentunit",
        ),
        graph(
            "Confidence quantiles",
            "Probability of the predicted class: median and 10th percentile over 5 minutes.",
            promql(
                "histogram_quantile(0.5, sum by (le) (rate(cv_model_confidence_bucket[5m])))",
                "median",
            ),
            promql(
                "histogram_quantile(0.1, sum by (le) (rate(cv_model_confidence_bucket[5m])))",
                "10th percentile",
            ),
            unit="percentunit",
        ),
        graph(
            "Photos that are neither cat nor dog",
            "Predictions whose photo looked like neither, per second (0 until the first one: "
            "the counter has a series per model version only once it counts).",
            promql(
                "sum(rate(cv_predictions_not_pet_total[5m])) "
                "or sum(rate(cv_predictions_total[5m])) * 0",
                "not a pet",
            ),
            unit="reqps",
        ),
        grid(
            "Model served",
            "cv_model_info: one row per process and model version.",
            promql("cv_model_info", "{{version}}", instant=True),
            datasource=PROMETHEUS,
            width=24,
        ),
    ]
