"""Build the Grafana dashboard as code with Grafana's Python SDK (grafana-foundation-sdk).

`python -m monitoring.grafana.build_dashboards` writes two files:
- `dashboards/cv_dashboard.json`, loaded by Grafana's file provisioning (fixed datasource uids);
- `export/cv_dashboard.export.json`, the same dashboard with `__inputs`, for Dashboards →
  New → Import in a Grafana that was not provisioned (datasources chosen at import).
`--check` writes nothing and fails when the committed files differ from what the code builds.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any, Self

from grafana_foundation_sdk.builders import common, dashboard, stat, table, timeseries
from grafana_foundation_sdk.builders import prometheus as prom_query
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.common import (
    AxisPlacement,
    BigValueGraphMode,
    GraphTresholdsStyleMode,
    StackingMode,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

GRAFANA_DIR = Path(__file__).resolve().parent
DASHBOARD_FILE = GRAFANA_DIR / "dashboards" / "cv_dashboard.json"
EXPORT_FILE = GRAFANA_DIR / "export" / "cv_dashboard.export.json"

# Must match provisioning/datasources/datasources.yml (a test checks it).
PROMETHEUS = model.DataSourceRef(type_val="prometheus", uid="cv-prometheus")
POSTGRESQL = model.DataSourceRef(type_val="grafana-postgresql-datasource", uid="cv-postgresql")
# Import inputs of the export variant, by datasource uid.
EXPORT_INPUTS = {
    PROMETHEUS.uid: ("DS_PROMETHEUS", "Prometheus", "prometheus", "Prometheus"),
    POSTGRESQL.uid: ("DS_POSTGRESQL", "PostgreSQL", "grafana-postgresql-datasource", "PostgreSQL"),
}
ERROR_BUDGET = 0.005  # the 99.5 % availability objective of the burn-rate alerts
ROLLBACK_ALPHA = 0.05  # ROLLBACK_ALPHA's default: a canary p-value under it is rolled back


def serving(role: str = "") -> str:
    """The (model_version, role) pairs serving now, from cv_model_info (which says `version`).

    The per-version gauges keep a version's last value after it leaves its role; joining on
    this keeps the panels to the versions that hold the role now.
    """
    selector = f'{{role="{role}"}}' if role else ""
    return (
        f"label_replace(max by (version, role) (cv_model_info{selector} == 1), "
        '"model_version", "$1", "version", "(.*)")'
    )


def per_version_share(part: str, whole: str) -> str:
    """`part / whole` per model version, 0 rather than no data while `part` has no series yet."""
    return (
        f"(sum by (model_version) ({part}) or sum by (model_version) ({whole}) * 0) "
        f"/ sum by (model_version) ({whole})"
    )


class SqlQuery(cogvariants.Dataquery):
    """A raw SQL target of Grafana's PostgreSQL datasource (this SDK release has no builder)."""

    def __init__(self, ref_id: str, raw_sql: str, fmt: str) -> None:
        self.ref_id = ref_id
        self.raw_sql = raw_sql
        self.format = fmt

    def to_json(self) -> dict[str, object]:
        """The target as Grafana stores it."""
        return {
            "refId": self.ref_id,
            "datasource": POSTGRESQL.to_json(),
            "editorMode": "code",
            "format": self.format,
            "rawQuery": True,
            "rawSql": self.raw_sql,
        }


class Sql(cogbuilder.Builder[SqlQuery]):
    """Builder of `SqlQuery`, in the SDK's style."""

    def __init__(self, raw_sql: str, *, fmt: str = "table", ref_id: str = "A") -> None:
        self._query = SqlQuery(ref_id, raw_sql.strip(), fmt)

    def build(self) -> SqlQuery:
        """The query."""
        return self._query

    def ref_id(self, ref_id: str) -> Self:
        """Rename the query."""
        self._query.ref_id = ref_id
        return self


def promql(expr: str, legend: str = "", *, ref_id: str = "A", instant: bool = False) -> Any:
    """A Prometheus target."""
    query = (
        prom_query.Dataquery()
        .expr(" ".join(expr.split()))
        .ref_id(ref_id)
        .datasource(PROMETHEUS)
        .legend_format(legend or "__auto")
    )
    return query.instant().format(PromQueryFormat.TABLE) if instant else query.range()


def targets(*queries: Any) -> list[Any]:
    """Name queries A, B, C... in order."""
    return [query.ref_id(chr(ord("A") + index)) for index, query in enumerate(queries)]


def graph(
    title: str, description: str, *queries: Any, unit: str = "short", width: int = 12
) -> timeseries.Panel:
    """A time series panel."""
    return (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .targets(targets(*queries))
        .unit(unit)
        .height(8)
        .span(width)
    )


def single(
    title: str,
    description: str,
    query: Any,
    *,
    unit: str,
    steps: list[tuple[float | None, str]],
    width: int = 6,
) -> stat.Panel:
    """A stat panel coloured by thresholds."""
    thresholds = (
        dashboard.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=color) for value, color in steps])
    )
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .targets(targets(query))
        .unit(unit)
        .thresholds(thresholds)
        .graph_mode(BigValueGraphMode.AREA)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]))
        .height(5)
        .span(width)
    )


def grid(title: str, description: str, query: Any, *, datasource: Any, width: int) -> table.Panel:
    """A table panel."""
    return (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(datasource)
        .targets([query])
        .height(9)
        .span(width)
    )


def sql_graph(title: str, description: str, query: Sql, *, unit: str) -> timeseries.Panel:
    """A time series panel fed by PostgreSQL."""
    return (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(POSTGRESQL)
        .targets([query])
        .unit(unit)
        .height(9)
        .span(12)
    )


def overview_row(board: dashboard.Dashboard) -> None:
    """The original guide's four queries, unchanged, and the headline numbers."""
    board.with_row(dashboard.Row("Overview"))
    board.with_panel(
        single(
            "Live accuracy (feedback)",
            "Share of satisfied verdicts among predictions with feedback in the feedback "
            "service's window (each prediction once, latest verdict). Alert under 80 %.",
            promql("max(cv_feedback_accuracy_ratio)", "live accuracy"),
            unit="percentunit",
            steps=[(None, "red"), (0.8, "orange"), (0.9, "green")],
        )
    )
    board.with_panel(
        single(
            "Predictions with feedback (window)",
            "How many predictions the live accuracy is computed from (alerts need 20).",
            promql("max(cv_feedback_accuracy_predictions)", "predictions"),
            unit="short",
            steps=[(None, "orange"), (20, "green")],
        )
    )
    board.with_panel(
        single(
            "Services up",
            "Scrape targets answering, out of all of them.",
            promql("sum(up)", "up"),
            unit="short",
            steps=[(None, "red"), (6, "green")],
        )
    )
    board.with_panel(
        single(
            "Firing alerts",
            "Alerts Prometheus is firing now (Alertmanager routes them to the notifier).",
            promql('count(ALERTS{alertstate="firing"}) or vector(0)', "firing"),
            unit="short",
            steps=[(None, "green"), (1, "red")],
        )
    )
    board.with_panel(
        graph(
            "Predictions per second by class",
            "The guide's query: rate(cv_predictions_total[5m]).",
            promql("rate(cv_predictions_total[5m])", "{{result}} {{model_version}} ({{instance}})"),
            unit="reqps",
        )
    )
    board.with_panel(
        graph(
            "Median inference time",
            "The guide's query: histogram_quantile(0.50, rate(cv_inference_time_seconds_bucket"
            "[5m])), per instance.",
            promql(
                "histogram_quantile(0.50, rate(cv_inference_time_seconds_bucket[5m]))",
                "p50 {{model_version}} ({{instance}})",
            ),
            unit="s",
        )
    )
    board.with_panel(
        graph(
            "Cat share of predictions",
            "The guide's query: share of cat answers over 5 minutes.",
            promql(
                'sum(rate(cv_predictions_total{result="cat"}[5m])) '
                "/ sum(rate(cv_predictions_total[5m]))",
                "cat share",
            ),
            unit="percentunit",
        )
    )
    board.with_panel(
        graph(
            "Unsatisfied feedback rate",
            'The guide\'s query: rate(cv_user_feedback_total{satisfaction="unsatisfied"}[10m]).',
            promql(
                'rate(cv_user_feedback_total{satisfaction="unsatisfied"}[10m])',
                "unsatisfied ({{instance}})",
            ),
            unit="reqps",
        )
    )


def model_row(board: dashboard.Dashboard) -> None:
    """What the model does and what users think of it: accuracy and drift."""
    board.with_row(dashboard.Row("Model quality and drift"))
    board.with_panel(
        graph(
            "Live accuracy",
            "From the feedback service (PostgreSQL, each prediction once) and from the feedback "
            "counters over 1 h (every verdict).",
            promql("cv_feedback_accuracy_ratio", "feedback service ({{instance}})"),
            promql("job:cv_user_feedback_satisfied:ratio_rate1h", "satisfied share, 1 h"),
            unit="percentunit",
        )
    )
    board.with_panel(
        graph(
            "Feedback by verdict",
            "Verdicts per second over 5 minutes.",
            promql("sum by (satisfaction) (rate(cv_user_feedback_total[5m]))", "{{satisfaction}}"),
            unit="reqps",
        )
    )
    board.with_panel(
        graph(
            "Prediction drift: cat share vs its 7-day baseline",
            "CVPredictionDrift fires when the two are more than 0.15 apart for 30 minutes.",
            promql("job:cv_predictions_cat:ratio_rate1h", "last hour"),
            promql("job:cv_predictions_cat:ratio_avg7d", "7-day average"),
            unit="percentunit",
        )
    )
    board.with_panel(
        graph(
            "Confidence drift: share of answers under 0.8 confidence",
            "CVConfidenceDrift fires when the last hour is 0.10 above the 7-day average.",
            promql("job:cv_model_confidence_low:ratio_rate1h", "last hour"),
            promql("job:cv_model_confidence_low:ratio_avg7d", "7-day average"),
            unit="percentunit",
        )
    )
    board.with_panel(
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
        )
    )
    board.with_panel(
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
        )
    )
    board.with_panel(
        grid(
            "Model served",
            "cv_model_info: one row per process and model version.",
            promql("cv_model_info", "{{version}}", instant=True),
            datasource=PROMETHEUS,
            width=24,
        )
    )


def versions_row(board: dashboard.Dashboard) -> None:
    """The model versions side by side: traffic, answers, speed, accuracy, canary and shadow."""
    board.with_row(dashboard.Row("Model versions"))
    board.with_panel(
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
        .fill_opacity(30)
    )
    board.with_panel(
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
        )
    )
    board.with_panel(
        graph(
            "Inference time p95 by model version",
            "Decode + preprocess + model; the canary is rolled back above ROLLBACK_LATENCY_RATIO "
            "(2) times the active model's p95.",
            promql(
                "histogram_quantile(0.95, sum by (model_version, le) "
                "(rate(cv_inference_time_seconds_bucket[5m])))",
                "{{model_version}}",
            ),
            unit="s",
            width=8,
        )
    )
    board.with_panel(
        graph(
            "Confidence by model version",
            "Mean probability of the predicted class, and the share of answers under 0.8 "
            "(LOW_CONFIDENCE_THRESHOLD), over 5 minutes.",
            promql(
                "sum by (model_version) (rate(cv_model_confidence_sum[5m])) "
                "/ sum by (model_version) (rate(cv_model_confidence_count[5m]))",
                "mean {{model_version}}",
            ),
            promql(
                per_version_share(
                    'rate(cv_model_confidence_bucket{le="0.8"}[5m])',
                    "rate(cv_model_confidence_count[5m])",
                ),
                "under 0.8 {{model_version}}",
            ),
            unit="percentunit",
        )
    )
    board.with_panel(
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
        )
    )
    board.with_panel(
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
        .axis_soft_max(1)
    )
    board.with_panel(
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
        )
    )
    board.with_panel(
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
        )
    )
    board.with_panel(
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
        )
    )


def inference_row(board: dashboard.Dashboard) -> None:
    """Inference latency, stages, rejections and the write path to PostgreSQL."""
    board.with_row(dashboard.Row("Inference"))
    board.with_panel(
        graph(
            "Inference time quantiles",
            "Decode + preprocess + model. CVInferenceLatencyHigh fires over 500 ms at p95.",
            promql("job:cv_inference_time_seconds:p50_rate5m", "p50"),
            promql("job:cv_inference_time_seconds:p95_rate5m", "p95"),
            promql("job:cv_inference_time_seconds:p99_rate5m", "p99"),
            unit="s",
        )
    )
    board.with_panel(
        graph(
            "Time per stage (p95)",
            "Where the time goes: decode, preprocess, model.",
            promql(
                "histogram_quantile(0.95, sum by (stage, le) "
                "(rate(cv_inference_stage_seconds_bucket[5m])))",
                "{{stage}}",
            ),
            unit="s",
        )
    )
    board.with_panel(
        graph(
            "Uploads refused by reason",
            "Per second: not an image, unsupported format, too large...",
            promql("sum by (reason) (rate(cv_images_rejected_total[5m]))", "{{reason}}"),
            unit="reqps",
            width=8,
        )
    )
    board.with_panel(
        graph(
            "Predictions waiting for PostgreSQL",
            "Rows kept in memory while the database is unreachable.",
            promql("sum by (instance) (cv_prediction_writes_pending)", "{{instance}}"),
            unit="short",
            width=8,
        )
    )
    board.with_panel(
        graph(
            "Dropped while PostgreSQL was away (1 h)",
            "Rows or photos dropped past the in-memory bound, by kind.",
            promql("sum by (kind) (increase(cv_prediction_writes_dropped_total[1h]))", "{{kind}}"),
            unit="short",
            width=8,
        )
    )
    board.with_panel(
        graph(
            "Database connected",
            "1 when the process reaches PostgreSQL. CVDatabaseDisconnected fires after 1 minute "
            "at 0.",
            promql("cv_database_connected", "{{job}} {{instance}}"),
            unit="bool",
            width=24,
        )
    )


def http_row(board: dashboard.Dashboard) -> None:
    """Requests, errors and latency of every service, and the error budget."""
    board.with_row(dashboard.Row("HTTP by service"))
    board.with_panel(
        graph(
            "Requests per second",
            "Per service and route template.",
            promql("sum by (job, handler) (rate(http_requests_total[5m]))", "{{job}} {{handler}}"),
            unit="reqps",
            width=8,
        )
    )
    board.with_panel(
        graph(
            "Errors per second",
            "4xx are the clients' mistakes; 5xx are ours and burn the error budget.",
            promql(
                'sum by (job, status) (rate(http_requests_total{status=~"4xx|5xx"}[5m]))',
                "{{job}} {{status}}",
            ),
            unit="reqps",
            width=8,
        )
    )
    board.with_panel(
        graph(
            "Latency p95",
            "Per service, all routes.",
            promql("job:http_request_duration_seconds:p95_rate5m", "{{job}}"),
            unit="s",
            width=8,
        )
    )
    board.with_panel(
        graph(
            "Error-budget burn rate",
            "5xx ratio divided by the 0.5 % budget: 1 spends it in exactly 30 days; the fast "
            "alert pages at 14.4 (1 h and 5 min) or 6 (6 h and 30 min).",
            promql(f"job:http_request_errors:ratio_rate1h / {ERROR_BUDGET}", "{{job}} 1 h"),
            promql(f"job:http_request_errors:ratio_rate5m / {ERROR_BUDGET}", "{{job}} 5 min"),
            unit="short",
            width=24,
        )
    )


def rgpd_row(board: dashboard.Dashboard) -> None:
    """Consent, the owners' rights and retention (feedback service)."""
    board.with_row(dashboard.Row("Feedback and RGPD"))
    board.with_panel(
        graph(
            "Feedback by consent",
            "Accepted feedback per second; without consent it is counted, not stored.",
            promql("sum by (consent) (rate(cv_feedback_consent_total[5m]))", "consent={{consent}}"),
            unit="reqps",
            width=8,
        )
    )
    board.with_panel(
        graph(
            "Rights exercised and retention runs (1 h)",
            "Erasures and access requests by their owners; retention purges by outcome.",
            promql("sum(increase(cv_rgpd_erasures_total[1h]))", "erasures"),
            promql("sum(increase(cv_rgpd_access_requests_total[1h]))", "access requests"),
            promql("sum by (outcome) (increase(cv_retention_runs_total[1h]))", "purge {{outcome}}"),
            unit="short",
            width=8,
        )
    )
    board.with_panel(
        graph(
            "Time since the last retention purge",
            "CVRetentionStale fires past 3 hours.",
            promql(
                "time() - max by (job) (cv_retention_last_success_timestamp_seconds)", "{{job}}"
            ),
            unit="s",
            width=8,
        )
    )


def notifier_row(board: dashboard.Dashboard) -> None:
    """The relay that carries alerts to Discord."""
    board.with_row(dashboard.Row("Notifier (alerts to Discord)"))
    board.with_panel(
        graph(
            "Messages per second",
            "Queued into the outbox, and delivered to Discord.",
            promql("sum(rate(cv_notifier_messages_queued_total[5m]))", "queued"),
            promql("sum(rate(cv_notifier_messages_delivered_total[5m]))", "delivered"),
            unit="reqps",
            width=6,
        )
    )
    board.with_panel(
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
        )
    )
    board.with_panel(
        graph(
            "Outbox",
            "Pending messages and the age of the oldest (CVNotifierBacklog over 5 minutes).",
            promql("max(cv_notifier_queue_depth)", "pending messages"),
            promql("max(cv_notifier_oldest_queued_age_seconds)", "oldest age (s)"),
            unit="short",
            width=6,
        )
    )
    board.with_panel(
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
        )
    )


def alerts_row(board: dashboard.Dashboard) -> None:
    """What is firing now."""
    board.with_row(dashboard.Row("Alerts"))
    board.with_panel(
        grid(
            "Alerts firing or pending",
            "From Prometheus' ALERTS series; runbooks in monitoring/runbook.md.",
            promql("ALERTS", "{{alertname}}", instant=True),
            datasource=PROMETHEUS,
            width=24,
        )
    )


RECENT_PREDICTIONS_SQL = """
SELECT created_at AS "time", prediction_result, round(proba_cat::numeric, 3) AS proba_cat,
       round(confidence::numeric, 3) AS confidence,
       round(inference_time_ms::numeric, 1) AS inference_time_ms, model_version,
       CASE user_feedback WHEN 1 THEN 'satisfied' WHEN 0 THEN 'unsatisfied' END AS feedback
FROM monitoring
WHERE $__timeFilter(created_at)
ORDER BY created_at DESC
LIMIT 50
"""
SATISFACTION_BY_DAY_SQL = """
SELECT $__timeGroupAlias(created_at, '1d'), avg(user_feedback)::float8 AS satisfaction_rate
FROM monitoring
WHERE $__timeFilter(created_at) AND user_feedback IS NOT NULL
GROUP BY 1
ORDER BY 1
"""
PREDICTIONS_BY_HOUR_SQL = """
SELECT $__timeGroupAlias(created_at, '1h'),
       count(*) FILTER (WHERE prediction_result = 'cat') AS cat,
       count(*) FILTER (WHERE prediction_result = 'dog') AS dog
FROM monitoring
WHERE $__timeFilter(created_at)
GROUP BY 1
ORDER BY 1
"""


def postgresql_row(board: dashboard.Dashboard) -> None:
    """Straight from the predictions table."""
    board.with_row(dashboard.Row("PostgreSQL"))
    board.with_panel(
        sql_graph(
            "Satisfaction by day",
            "AVG(user_feedback) per day: 1 satisfied, 0 unsatisfied; rows without feedback "
            "are left out.",
            Sql(SATISFACTION_BY_DAY_SQL, fmt="time_series"),
            unit="percentunit",
        )
    )
    board.with_panel(
        sql_graph(
            "Predictions per hour by class",
            "Counted from the monitoring table (what was stored, not what was served).",
            Sql(PREDICTIONS_BY_HOUR_SQL, fmt="time_series"),
            unit="short",
        )
    )
    board.with_panel(
        grid(
            "Recent predictions",
            "The last 50 predictions of the time range, with their feedback.",
            Sql(RECENT_PREDICTIONS_SQL),
            datasource=POSTGRESQL,
            width=24,
        )
    )


def build_dashboard() -> dict[str, Any]:
    """The provisioned dashboard as Grafana's JSON model."""
    board = (
        dashboard.Dashboard("Cat vs dog — service and model")
        .uid("cv-overview")
        .description(
            "Predictions, model quality and drift, model versions, HTTP, notifier and PostgreSQL."
        )
        .tags(["cat-dog", "mlops"])
        .editable()
        .time("now-6h", "now")
        .refresh("30s")
        .timezone("browser")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
    )
    for add_row in (
        overview_row,
        model_row,
        versions_row,
        inference_row,
        http_row,
        rgpd_row,
        notifier_row,
        alerts_row,
        postgresql_row,
    ):
        add_row(board)
    built: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    # Grafana links panels (and their URLs) by id; the SDK leaves them unset or 0.
    for number, panel in enumerate(built["panels"], start=1):
        panel["id"] = number
    # Grafana's loader expects lists here, and adds its built-in annotations itself.
    built["annotations"] = {"list": []}
    built["templating"] = {"list": []}
    return built


def export_variant(provisioned: dict[str, Any]) -> dict[str, Any]:
    """The same dashboard for manual import: datasources become `__inputs` chosen at import."""
    exported = copy.deepcopy(provisioned)
    exported.pop("id", None)

    def replace(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("datasource")
            if isinstance(ref, dict) and ref.get("uid") in EXPORT_INPUTS:
                ref["uid"] = "${" + EXPORT_INPUTS[ref["uid"]][0] + "}"
            for value in node.values():
                replace(value)
        elif isinstance(node, list):
            for item in node:
                replace(item)

    replace(exported)
    inputs = [
        {"name": name, "label": label, "description": "", "type": "datasource"}
        | {"pluginId": plugin, "pluginName": plugin_name}
        for name, label, plugin, plugin_name in EXPORT_INPUTS.values()
    ]
    panel_types = sorted({panel["type"] for panel in provisioned["panels"]} - {"row"})
    requires = [
        {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.4.0"},
        *(
            {"type": "datasource", "id": plugin, "name": plugin_name, "version": "1.0.0"}
            for _, _, plugin, plugin_name in EXPORT_INPUTS.values()
        ),
        *({"type": "panel", "id": kind, "name": kind, "version": ""} for kind in panel_types),
    ]
    return {"__inputs": inputs, "__requires": requires, **exported}


def render(document: dict[str, Any]) -> str:
    """Stable JSON text: the committed files are compared byte for byte."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def outputs() -> dict[Path, str]:
    """Every file this module builds, with its content."""
    provisioned = build_dashboard()
    return {DASHBOARD_FILE: render(provisioned), EXPORT_FILE: render(export_variant(provisioned))}


def main(argv: list[str] | None = None) -> int:
    """Write the dashboards, or check that the committed ones are up to date."""
    parser = argparse.ArgumentParser(
        prog="python -m monitoring.grafana.build_dashboards",
        description="Build the Grafana dashboard JSON (provisioned and import variants).",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if a committed file differs from what the code builds",
    )
    args = parser.parse_args(argv)
    stale = []
    for path, text in outputs().items():
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(GRAFANA_DIR.parents[1])}")
    if args.check and stale:
        names = ", ".join(str(path.relative_to(GRAFANA_DIR.parents[1])) for path in stale)
        print(f"out of date: {names} (run python -m monitoring.grafana.build_dashboards)")
        return 1
    if not stale:
        print("dashboards up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
