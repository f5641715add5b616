"""The model versions side by side: traffic, answers, speed, accuracy, canary and shadow."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import common, dashboard
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.common import (
    AxisPlacement,
    GraphTresholdsStyleMode,
    StackingMode,
)

from monitoring.grafana.panels import (
    graph,
    per_version_share,
    promql,
    serving,
)
from services.common.objectives import LOW_CONFIDENCE, ROLLBACK_ALPHA, ROLLBACK_LATENCY_RATIO

TITLE = "Model versions"


def panels() -> list[Any]:
    """The row's panels, in order."""
    return [
        graph(
            "Request share by model version",
            "Share of the answers each version gave over 5 minutes (active and canary; a shadow "
            "answers nobody). Stacked: the versions add up to 100 %.",
            promql(
                "sum by (model_version) (rate(cv_predictions_total[5m])) "
                "/ ignoring (model_version) group_left () sum (rate(cv_predictions_total[5m]))",
                "{{model_version}}",
            ),
            unit="percentunit",
            width=8,
        )
        .stacking(common.StackingConfig().mode(StackingMode.NORMAL))
        .fill_opacity(30),
        graph(
            "Cat share by model version",
            "Versions that see the same traffic should answer cat about as often.",
            promql(
                per_version_share(
                    'rate(cv_predictions_total{result="cat"}[5m])', "rate(cv_predictions_total[5m])"
                ),
                "{{model_version}}",
            ),
            unit="percentunit",
            width=8,
        ),
        graph(
            "Inference time p95 by model version",
            "Decode + preprocess + model; the canary is rolled back above ROLLBACK_LATENCY_RATIO "
            f"({ROLLBACK_LATENCY_RATIO:g}) times the active model's p95.",
            promql(
                "histogram_quantile(0.95, sum by (model_version, le) "
                "(rate(cv_inference_time_seconds_bucket[5m])))",
                "{{model_version}}",
            ),
            unit="s",
            width=8,
        ),
        graph(
            "Confidence by model version",
            "Mean probability of the predicted class, and the share of answers under "
            f"{LOW_CONFIDENCE:g} (LOW_CONFIDENCE), over 5 minutes.",
            promql(
                "sum by (model_version) (rate(cv_model_confidence_sum[5m])) "
                "/ sum by (model_version) (rate(cv_model_confidence_count[5m]))",
                "mean {{model_version}}",
            ),
            promql(
                per_version_share(
                    f'rate(cv_model_confidence_bucket{{le="{LOW_CONFIDENCE:g}"}}[5m])',
                    "rate(cv_model_confidence_count[5m])",
                ),
                f"under {LOW_CONFIDENCE:g} {{{{model_version}}}}",
            ),
            unit="percentunit",
        ),
        graph(
            "Feedback accuracy by model version and role",
            "Right answers among the labelled feedback since the candidate took its role, for "
            "the canary or shadow and the active model over the same period (from PostgreSQL, "
            "as the rollback decision reads it). Dashed, right axis: labelled answers behind it.",
            promql(
                "max by (model_version, role) (cv_model_feedback_accuracy) "
                f"and on (model_version, role) {serving()}",
                "{{model_version}} ({{role}})",
            ),
            promql(
                "max by (model_version, role) (cv_model_feedback_labelled) "
                f"and on (model_version, role) {serving()}",
                "labelled {{model_version}} ({{role}})",
            ),
            unit="percentunit",
        ).override_by_query(
            "B",
            [
                model.DynamicConfigValue(id_val="unit", value="short"),
                model.DynamicConfigValue(id_val="custom.axisPlacement", value=AxisPlacement.RIGHT),
                model.DynamicConfigValue(id_val="custom.axisLabel", value="labelled answers"),
                model.DynamicConfigValue(
                    id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}
                ),
            ],
        ),
        graph(
            "Canary accuracy p-value",
            "One-sided two-proportion z-test that the canary is less accurate than the active "
            f"model; under ROLLBACK_ALPHA (line, default {ROLLBACK_ALPHA}) with enough labels "
            "on both sides, the canary is rolled back.",
            promql(
                "max by (model_version) (cv_canary_accuracy_p_value) "
                f"and on (model_version) {serving('canary')}",
                "{{model_version}}",
            ),
            unit="short",
            width=8,
        )
        .thresholds(
            dashboard.ThresholdsConfig()
            .mode(model.ThresholdsMode.ABSOLUTE)
            .steps(
                [
                    model.Threshold(value=None, color="red"),
                    model.Threshold(value=ROLLBACK_ALPHA, color="green"),
                ]
            )
        )
        .thresholds_style(common.GraphThresholdsStyleConfig().mode(GraphTresholdsStyleMode.DASHED))
        .axis_soft_min(0)
        .axis_soft_max(1),
        graph(
            "Shadow agreement with the answers given",
            "Share of the photos the shadow scored where it gave the answer the user got.",
            promql(
                per_version_share(
                    'rate(cv_shadow_predictions_total{agreement="agree"}[5m])',
                    "rate(cv_shadow_predictions_total[5m])",
                ),
                "{{model_version}}",
            ),
            unit="percentunit",
            width=8,
        ),
        graph(
            "Shadow photos scored and dropped",
            "Per second; photos are dropped, never awaited, when the shadow's queue "
            "(SHADOW_QUEUE_LIMIT) is full.",
            promql(
                "sum by (model_version) (rate(cv_shadow_predictions_total[5m]))",
                "scored {{model_version}}",
            ),
            promql(
                "sum by (model_version) (rate(cv_shadow_dropped_total[5m])) "
                "or sum by (model_version) (rate(cv_shadow_predictions_total[5m])) * 0",
                "dropped {{model_version}}",
            ),
            unit="reqps",
            width=8,
        ),
        graph(
            "Line-up changes and rollbacks (1 h)",
            "Line-ups picked up from the registry by outcome (a failed one keeps the previous "
            "line-up serving), and canaries rolled back automatically by reason.",
            promql("sum by (outcome) (increase(cv_model_swaps_total[1h]))", "swap {{outcome}}"),
            promql(
                "sum by (reason) (increase(cv_model_rollbacks_total[1h]))", "rollback: {{reason}}"
            ),
            unit="short",
            width=24,
        ),
    ]
