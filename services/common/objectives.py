"""The numbers the alert rules compare against, for the dashboards that draw them and the
services that decide by them (shared: Grafana's builder, the dashboard's health strip and the
inference service's defaults all read them here).

Prometheus rule files cannot import: `RULE_FRAGMENTS` says how each number is written in the
committed rules, and `monitoring/tests/test_objectives.py` fails if a rule says otherwise, so
a threshold changed here must be changed there (and the other way round).
"""

from __future__ import annotations

from services.common.thresholds import LOW_CONFIDENCE

__all__ = ["LOW_CONFIDENCE"]  # re-exported: the panels draw it beside the rules' numbers

ERROR_BUDGET = 0.005  # 99.5 % of requests without a 5xx
FAST_BURN_RATES = (14.4, 6)  # pages: the budget would be gone in about 2 and 5 days
SLOW_BURN_RATES = (3, 1)
INFERENCE_P95_CEILING_S = 0.5
LIVE_ACCURACY_FLOOR = 0.8
LIVE_ACCURACY_MIN_PREDICTIONS = 20
CAT_SHARE_DRIFT = 0.15
LOW_CONFIDENCE_DRIFT = 0.10
ESTIMATED_ACCURACY_FLOOR = 0.95
CALIBRATION_DRIFT_STDERRS = 3
CALIBRATION_MIN_LABELLED = 50
MODEL_WATCH_STALE_S = 900
RETENTION_STALE_S = 3 * 3600
NOTIFIER_BACKLOG_S = 300

# Decided by the inference service, not by rules: its settings' defaults, which the panels draw.
ROLLBACK_ALPHA = 0.05
ROLLBACK_LATENCY_RATIO = 2.0
DRIFT_ALPHA = 0.01

# (rule file, alert or recorded series) -> text its expression holds.
RULE_FRAGMENTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("alerts.yml", "CVErrorBudgetBurnFast"): tuple(
        f"({rate:g} * {ERROR_BUDGET:g})" for rate in FAST_BURN_RATES
    ),
    ("alerts.yml", "CVErrorBudgetBurnSlow"): tuple(
        f"({rate:g} * {ERROR_BUDGET:g})" for rate in SLOW_BURN_RATES
    ),
    ("alerts.yml", "CVInferenceLatencyHigh"): (f"> {INFERENCE_P95_CEILING_S:g}",),
    ("alerts.yml", "CVLiveAccuracyLow"): (
        f"< {LIVE_ACCURACY_FLOOR:g}",
        f">= {LIVE_ACCURACY_MIN_PREDICTIONS}",
    ),
    ("alerts.yml", "CVPredictionDrift"): (f"> {CAT_SHARE_DRIFT:.2f}",),
    ("alerts.yml", "CVConfidenceDrift"): (f"> {LOW_CONFIDENCE_DRIFT:.2f}",),
    ("alerts.yml", "CVEstimatedAccuracyLow"): (f"< {ESTIMATED_ACCURACY_FLOOR:g}",),
    ("alerts.yml", "CVCalibrationDrift"): (
        f"> {CALIBRATION_DRIFT_STDERRS}",
        f">= {CALIBRATION_MIN_LABELLED}",
    ),
    ("alerts.yml", "CVModelWatchStale"): (f"> {MODEL_WATCH_STALE_S}",),
    ("alerts.yml", "CVRetentionStale"): (f"> {RETENTION_STALE_S // 3600} * 3600",),
    ("alerts.yml", "CVNotifierBacklog"): (f"> {NOTIFIER_BACKLOG_S}",),
    ("recording.yml", "job:cv_model_confidence_low:ratio_rate1h"): (
        f'cv_model_confidence_bucket{{le="{LOW_CONFIDENCE:g}"}}',
    ),
}
