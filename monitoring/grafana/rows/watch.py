"""Is each served version going wrong before users say so: embedding drift, accuracy estimated
without labels, and calibration on the answers users labelled (inference's model watch)."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import common, dashboard, timeseries
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.common import AxisPlacement, GraphTresholdsStyleMode

from monitoring.grafana.panels import POSTGRESQL, Sql, graph, grid, promql, serving, single
from services.common.objectives import (
    CALIBRATION_DRIFT_STDERRS,
    CALIBRATION_MIN_LABELLED,
    DRIFT_ALPHA,
    ESTIMATED_ACCURACY_FLOOR,
    MODEL_WATCH_STALE_S,
)

TITLE = "Model watch"
Z95 = 1.96  # the band drawn around the estimate: ±1.96 standard errors
DASHED = model.DynamicConfigValue(
    id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}
)

# The newest reliability curve of each version in the range, one row per non-empty bin.
RELIABILITY_SQL = """
WITH newest AS (
    SELECT DISTINCT ON (model_version) model_version, at, reliability, calibration_error
    FROM drift_checks
    WHERE $__timeFilter(at) AND reliability IS NOT NULL
    ORDER BY model_version, at DESC
)
SELECT n.model_version AS "model version", n.at AS "checked",
       round((n.reliability -> 'confidence' ->> (bin.i - 1)::int)::numeric, 3) AS "confidence",
       round((n.reliability -> 'accuracy' ->> (bin.i - 1)::int)::numeric, 3) AS "accuracy",
       bin.n::int AS "labelled answers",
       round(n.calibration_error::numeric, 4) AS "ECE"
FROM newest n
CROSS JOIN LATERAL jsonb_array_elements_text(n.reliability -> 'count') WITH ORDINALITY AS bin(n, i)
WHERE bin.n::int > 0
ORDER BY 1, 3
"""


def _served(metric: str) -> str:
    """The metric of each version serving now (gauges keep a retired version's last value)."""
    return f"max by (model_version) ({metric}) and on (model_version) {serving()}"


def _dashed(panel: timeseries.Panel, ref_id: str) -> timeseries.Panel:
    return panel.override_by_query(
        ref_id,
        [
            model.DynamicConfigValue(
                id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}
            )
        ],
    )


def _threshold_line(panel: timeseries.Panel, value: float, below: str, above: str) -> Any:
    """A dashed horizontal line at `value`, the colours saying which side is wrong."""
    return panel.thresholds(
        dashboard.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps(
            [model.Threshold(value=None, color=below), model.Threshold(value=value, color=above)]
        )
    ).thresholds_style(common.GraphThresholdsStyleConfig().mode(GraphTresholdsStyleMode.DASHED))


def panels() -> list[Any]:
    """The row's panels, in order."""
    estimate = f"({_served('cv_estimated_accuracy_ratio')})"
    stderr = f"({_served('cv_estimated_accuracy_stderr')})"
    return [
        _dashed(
            graph(
                "Embedding drift score and its threshold",
                "MMD² between each version's last window of embeddings and its training photos' "
                "(solid), and the score beyond which the permutation p-value is under "
                "DRIFT_ALPHA (dashed). CVEmbeddingDrift fires when the score stays above it.",
                promql(_served("cv_embedding_drift_score"), "score {{model_version}}"),
                promql(_served("cv_embedding_drift_threshold"), "threshold {{model_version}}"),
                unit="short",
            ),
            "B",
        ),
        _threshold_line(
            graph(
                "Embedding drift p-value",
                "Permutation p-value of each check; under DRIFT_ALPHA (line, default "
                f"{DRIFT_ALPHA:g}) the window differs from the training photos.",
                promql(_served("cv_embedding_drift_p_value"), "{{model_version}}"),
                unit="short",
            ),
            DRIFT_ALPHA,
            "red",
            "green",
        )
        .axis_soft_min(0)
        .axis_soft_max(1),
        _dashed(
            _dashed(
                _threshold_line(
                    graph(
                        "Estimated accuracy (no labels) and feedback accuracy",
                        "Accuracy expected from the calibrated confidence of each version's last "
                        f"window, with ±{Z95} standard errors (dashed), and the accuracy users' "
                        "feedback gives on its labelled answers. CVEstimatedAccuracyLow fires "
                        f"under {ESTIMATED_ACCURACY_FLOOR:.0%} (line).",
                        promql(estimate, "estimated {{model_version}}"),
                        promql(f"{estimate} + {Z95} * {stderr}", "95% band {{model_version}}"),
                        promql(f"{estimate} - {Z95} * {stderr}", "95% band {{model_version}}"),
                        promql(_served("cv_labelled_accuracy_ratio"), "feedback {{model_version}}"),
                        unit="percentunit",
                    ),
                    ESTIMATED_ACCURACY_FLOOR,
                    "red",
                    "green",
                ),
                "B",
            ),
            "C",
        ),
        _threshold_line(
            graph(
                "Calibration: estimate minus feedback accuracy, in standard errors",
                "On each version's labelled answers: how far their accuracy falls under what "
                "their confidence promised. CVCalibrationDrift fires above "
                f"{CALIBRATION_DRIFT_STDERRS} (line) with at least {CALIBRATION_MIN_LABELLED} "
                "labelled answers.",
                promql(
                    "max by (model_version) ((cv_labelled_estimated_accuracy_ratio "
                    "- cv_labelled_accuracy_ratio) / cv_labelled_estimated_accuracy_stderr) "
                    f"and on (model_version) {serving()}",
                    "{{model_version}}",
                ),
                unit="short",
                width=8,
            ),
            CALIBRATION_DRIFT_STDERRS,
            "green",
            "red",
        ),
        graph(
            "Calibration error (ECE) of labelled answers",
            "Expected calibration error over 15 bins of each version's labelled answers; "
            "dashed, right axis: how many answers it rests on.",
            promql(_served("cv_calibration_error"), "ECE {{model_version}}"),
            promql(_served("cv_labelled_predictions"), "labelled {{model_version}}"),
            unit="percentunit",
            width=8,
        ).override_by_query(
            "B",
            [
                model.DynamicConfigValue(id_val="unit", value="short"),
                model.DynamicConfigValue(id_val="custom.axisPlacement", value=AxisPlacement.RIGHT),
                model.DynamicConfigValue(id_val="custom.axisLabel", value="labelled answers"),
                DASHED,
            ],
        ),
        single(
            "Time since the newest check",
            "Age of the newest drift check of any served version (CVModelWatchStale past "
            f"{MODEL_WATCH_STALE_S // 60} minutes).",
            promql(
                "time() - max(cv_model_watch_last_check_timestamp_seconds "
                f"and on (model_version) {serving()})",
                "age",
            ),
            unit="s",
            steps=[(None, "green"), (MODEL_WATCH_STALE_S, "red")],
            width=8,
        ),
        grid(
            "Reliability of labelled answers (newest check)",
            "Per confidence bin of each version's newest check with labelled answers: the mean "
            "confidence and the share that was right (a calibrated model has them equal).",
            Sql(RELIABILITY_SQL),
            datasource=POSTGRESQL,
            width=24,
        ),
    ]
