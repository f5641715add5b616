"""The dashboard's domain metrics: how long callbacks and their SQL take, and what fails."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10)

CALLBACK_TIME = Histogram(
    "cv_dashboard_callback_seconds",
    "Time to answer one dashboard callback (queries and figure building), by callback.",
    ["callback"],
    buckets=_LATENCY_BUCKETS,
)
QUERY_TIME = Histogram(
    "cv_dashboard_query_seconds",
    "Time of one dashboard SQL query, by query.",
    ["query"],
    buckets=_LATENCY_BUCKETS,
)
QUERY_FAILURES = Counter(
    "cv_dashboard_query_failures_total",
    "Dashboard queries that failed, by query and reason (unreachable, timeout, schema, refused).",
    ["query", "reason"],
)
LOGIN_FAILURES = Counter(
    "cv_dashboard_login_failures_total", "Requests refused for missing or wrong credentials."
)
ROLLUP_RUNS = Counter(
    "cv_dashboard_rollup_runs_total",
    "Turns of the roll-up loop, by outcome (ok, unavailable, failed).",
    ["outcome"],
)
ROLLUP_SECONDS = Histogram(
    "cv_dashboard_rollup_seconds",
    "Time of one turn of the roll-up loop (catching up every closed hour).",
    buckets=_LATENCY_BUCKETS,
)
ROLLUP_WATERMARK = Gauge(
    "cv_dashboard_rollup_watermark_timestamp_seconds",
    "Every hour before this instant is rolled (an hour and the grace behind now when up to date).",
    multiprocess_mode="max",
)
