"""Straight from the predictions table."""

from __future__ import annotations

from typing import Any

from monitoring.grafana.panels import (
    POSTGRESQL,
    Sql,
    grid,
    sql_graph,
)

TITLE = "PostgreSQL"
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


def panels() -> list[Any]:
    """The row's panels, in order."""
    return [
        sql_graph(
            "Satisfaction by day",
            "AVG(user_feedback) per day: 1 satisfied, 0 unsatisfied; rows without feedback "
            "are left out.",
            Sql(SATISFACTION_BY_DAY_SQL, fmt="time_series"),
            unit="percentunit",
        ),
        sql_graph(
            "Predictions per hour by class",
            "Counted from the monitoring table (what was stored, not what was served).",
            Sql(PREDICTIONS_BY_HOUR_SQL, fmt="time_series"),
            unit="short",
        ),
        grid(
            "Recent predictions",
            "The last 50 predictions of the time range, with their feedback.",
            Sql(RECENT_PREDICTIONS_SQL),
            datasource=POSTGRESQL,
            width=24,
        ),
    ]
