"""Every SQL query of the dashboard: aggregation happens in PostgreSQL, Python gets the results.

All queries take a half-open window [$1, $2) on `created_at`, so they use its indexes (see the
0300 migrations); time series are bucketed with `date_bin` from a fixed origin so that buckets
stay put when the window slides. Windows with buckets of an hour or more read the roll-ups
where they cover them (`rollups`): the same figures, with interpolated percentiles. Feedback
and shadow answers count for the window of the prediction they belong to: they are joined by
prediction id, not filtered by their own times.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from services.common.db import CONNECTION_ERRORS, Database, DatabaseUnavailable
from services.common.feedback_truth import TRUTH_SQL
from services.common.thresholds import LOW_CONFIDENCE
from services.dashboard import health, metrics, rollups
from services.dashboard.window import Window

# Inference times (ms) where the histogram's bars start; the last bar is open-ended.
LATENCY_EDGES_MS = (0, 2, 4, 6, 8, 10, 15, 20, 30, 40, 50, 75, 100, 150, 200, 300, 500, 1000)
CONFIDENCE_BINS = 25

SUMMARY = """
SELECT count(*)                                              AS predictions,
       count(*) FILTER (WHERE prediction_result = 'cat')     AS cats,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY inference_time_ms)  AS p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY inference_time_ms) AS p95_ms,
       count(*) FILTER (WHERE confidence < $3)               AS low_confidence,
       count(*) FILTER (WHERE rgpd_consent)                  AS consented
FROM monitoring WHERE created_at >= $1 AND created_at < $2
"""
FEEDBACK_SUMMARY = """
SELECT count(*) AS feedback, count(*) FILTER (WHERE user_feedback = 1) AS satisfied
FROM monitoring WHERE created_at >= $1 AND created_at < $2 AND user_feedback IS NOT NULL
"""
LATEST_PREDICTION = "SELECT max(created_at) FROM monitoring"
SERIES = """
SELECT date_bin($3::interval, created_at, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
       prediction_result AS label, model_version AS version,
       count(*) AS n,
       count(*) FILTER (WHERE confidence < $4) AS low,
       count(*) FILTER (WHERE rgpd_consent) AS consented
FROM monitoring WHERE created_at >= $1 AND created_at < $2
GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
"""
LATENCY_SERIES = """
SELECT date_bin($3::interval, created_at, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY inference_time_ms)  AS p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY inference_time_ms) AS p95,
       max(inference_time_ms)                                           AS max
FROM monitoring WHERE created_at >= $1 AND created_at < $2
GROUP BY 1 ORDER BY 1
"""
LATENCY_HISTOGRAM = """
SELECT width_bucket(inference_time_ms, $3::float8[]) AS bin, count(*) AS n
FROM monitoring WHERE created_at >= $1 AND created_at < $2
GROUP BY 1 ORDER BY 1
"""
CONFIDENCE_HISTOGRAM = """
SELECT least(width_bucket(confidence, 0.5, 1.0, $3), $3) AS bin,
       count(*) AS n
FROM monitoring WHERE created_at >= $1 AND created_at < $2
GROUP BY 1 ORDER BY 1
"""
FEEDBACK_SERIES = """
SELECT date_bin($3::interval, created_at, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
       count(*) AS n, count(*) FILTER (WHERE user_feedback = 1) AS satisfied
FROM monitoring WHERE created_at >= $1 AND created_at < $2 AND user_feedback IS NOT NULL
GROUP BY 1 ORDER BY 1
"""
LATEST = """
SELECT id, created_at, prediction_result, confidence, inference_time_ms, model_version,
       user_feedback, rgpd_consent
FROM monitoring WHERE created_at >= $1 AND created_at < $2
ORDER BY created_at DESC LIMIT $3
"""
VERSION_ANSWERS = """
WITH answers AS (
    SELECT model_version AS version,
           count(*)                                               AS answers,
           count(*) FILTER (WHERE prediction_result = 'cat')      AS cats,
           avg(confidence)                                        AS mean_confidence,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY inference_time_ms)  AS p50_ms,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY inference_time_ms) AS p95_ms
    FROM monitoring WHERE created_at >= $1 AND created_at < $2
    GROUP BY 1
)
SELECT a.*, r.role, r.canary_share, r.role_since
FROM answers a LEFT JOIN model_versions r USING (version)
ORDER BY a.answers DESC, a.version
"""
# Only the constant TRUTH_SQL is interpolated into the two queries below.
# `user_feedback IS NOT NULL` is implied (the feedback service sets it with every stored
# feedback, in the same transaction) and lets the partial feedback index pick the rows.
VERSION_FEEDBACK = f"""
SELECT m.model_version AS version, count(*) AS labelled,
       count(*) FILTER (WHERE m.prediction_result = {TRUTH_SQL}) AS correct
FROM monitoring m JOIN feedback f ON f.prediction_id = m.id
WHERE m.created_at >= $1 AND m.created_at < $2 AND m.user_feedback IS NOT NULL
GROUP BY 1
"""  # noqa: S608
# Shadow answers of the window's predictions, judged against the same feedback.
SHADOW_ANSWERS = f"""
WITH shadows AS (
    SELECT s.model_version AS version,
           count(*)                                                 AS answers,
           count(*) FILTER (WHERE s.prediction_result = 'cat')      AS cats,
           avg(s.confidence)                                        AS mean_confidence,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY s.inference_time_ms)  AS p50_ms,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY s.inference_time_ms) AS p95_ms,
           count(*) FILTER (WHERE s.prediction_result = m.prediction_result) AS agreed,
           count(f.prediction_id)                                   AS labelled,
           count(*) FILTER (WHERE f.prediction_id IS NOT NULL
                            AND s.prediction_result = {TRUTH_SQL})      AS correct
    FROM monitoring m
    JOIN shadow_predictions s ON s.prediction_id = m.id
    LEFT JOIN feedback f ON f.prediction_id = m.id
    WHERE m.created_at >= $1 AND m.created_at < $2
    GROUP BY 1
)
SELECT sh.*, r.role, r.canary_share, r.role_since
FROM shadows sh LEFT JOIN model_versions r USING (version)
ORDER BY sh.answers DESC, sh.version
"""  # noqa: S608
# The model watch's checks (one per version and DRIFT_INTERVAL_S), averaged per bucket; a
# bucket counts as drifted when any of its checks was (score > threshold is p < DRIFT_ALPHA).
WATCH_SERIES = """
SELECT date_bin($3::interval, at, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
       model_version AS version,
       count(*)                                               AS checks,
       avg(drift_score)                                       AS drift_score,
       avg(drift_threshold)                                   AS drift_threshold,
       count(*) FILTER (WHERE drift_score > drift_threshold)  AS drifted,
       avg(estimated_accuracy)                                AS estimated_accuracy,
       avg(estimated_stderr)                                  AS estimated_stderr,
       avg(feedback_accuracy)                                 AS feedback_accuracy,
       max(labelled)                                          AS labelled
FROM drift_checks WHERE at >= $1 AND at < $2
GROUP BY 1, 2 ORDER BY 1, 2
"""
# The newest check of each version in the window, and its newest reliability curve (a check
# has one only once some of its version's answers were labelled through feedback).
WATCH_LATEST = """
SELECT DISTINCT ON (c.model_version)
       c.model_version AS version, c.at, c.window_size, c.reference_size, c.drift_score,
       c.drift_threshold, c.drift_p_value, c.estimated_accuracy, c.estimated_stderr,
       c.predictions, c.labelled, c.feedback_accuracy, c.calibration_error,
       r.at AS reliability_at, r.reliability, r.calibration_error AS reliability_error
FROM drift_checks c
LEFT JOIN LATERAL (
    SELECT at, reliability, calibration_error FROM drift_checks
    WHERE model_version = c.model_version AND at >= $1 AND at < $2 AND reliability IS NOT NULL
    ORDER BY at DESC LIMIT 1
) r ON true
WHERE c.at >= $1 AND c.at < $2
ORDER BY c.model_version, c.at DESC
"""


class QueryFailed(Exception):
    """A dashboard query did not produce a result; `reason` says what the user should read."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Summary:
    """Headline numbers of one window."""

    predictions: int
    cats: int
    p50_ms: float | None
    p95_ms: float | None
    low_confidence: int
    consented: int
    feedback: int
    satisfied: int


@dataclass(frozen=True)
class VersionFigures:
    """One model version over a window: its answers, or its shadow answers (never shown)."""

    version: str
    shadow: bool
    role: str | None  # in the registry now; None when the version is not registered
    canary_share: float | None
    role_since: datetime | None
    answers: int
    share: float  # of the window's answers (a shadow: the share of them it scored)
    cats: int
    mean_confidence: float
    p50_ms: float
    p95_ms: float
    labelled: int
    correct: int
    agreed: int | None  # shadows only: answers equal to the one given


def _failure(cause: BaseException | None) -> tuple[str, str]:
    """(reason, what the user should read) for why PostgreSQL did not answer."""
    if isinstance(cause, asyncpg.UndefinedTableError):
        return "schema", "the monitoring table is missing: run the migrations"
    if isinstance(cause, CONNECTION_ERRORS):
        return "unreachable", "PostgreSQL is unreachable"
    return "refused", "PostgreSQL refused the query (see the dashboard's log)"


def _version_figures(row: Mapping[str, Any], *, shadow: bool, total: int) -> VersionFigures:
    """One version's row (served or shadow), whichever source it came from."""
    return VersionFigures(
        version=row["version"],
        shadow=shadow,
        role=row["role"],
        canary_share=row["canary_share"],
        role_since=row["role_since"],
        answers=row["answers"],
        share=row["answers"] / total if total else 0.0,
        cats=row["cats"],
        mean_confidence=row["mean_confidence"],
        p50_ms=row["p50_ms"],
        p95_ms=row["p95_ms"],
        labelled=row["labelled"],
        correct=row["correct"],
        agreed=row["agreed"] if shadow else None,
    )


class Queries:
    """Runs the dashboard's SQL on the service's pool, timing and classifying failures."""

    def __init__(
        self, database: Database, *, timeout_s: float, acquire_timeout_s: float = 3.0
    ) -> None:
        self._database = database
        self._timeout_s = timeout_s
        self._acquire_timeout_s = acquire_timeout_s

    async def fetch(self, name: str, sql: str, *args: Any) -> list[asyncpg.Record]:
        """Run one query; an unreachable database or a missing schema becomes `QueryFailed`."""
        started = time.perf_counter()
        try:
            async with self._database.connection(
                acquire_timeout_s=self._acquire_timeout_s
            ) as connection:
                rows = await self._fetch_within_timeout(connection, name, sql, args)
        except DatabaseUnavailable as error:
            reason, message = _failure(error.__cause__)
            metrics.QUERY_FAILURES.labels(query=name, reason=reason).inc()
            raise QueryFailed(reason, message) from error
        metrics.QUERY_TIME.labels(query=name).observe(time.perf_counter() - started)
        return rows

    async def _fetch_within_timeout(
        self, connection: asyncpg.Connection, name: str, sql: str, args: tuple[Any, ...]
    ) -> list[asyncpg.Record]:
        """Fetch, telling a slow query (cancelled by asyncpg) apart from a lost connection."""
        try:
            rows: list[asyncpg.Record] = await connection.fetch(sql, *args, timeout=self._timeout_s)
        except (TimeoutError, asyncpg.QueryCanceledError) as error:
            metrics.QUERY_FAILURES.labels(query=name, reason="timeout").inc()
            raise QueryFailed(
                "timeout", "the query took too long: choose a shorter range"
            ) from error
        return rows

    async def _tiers(
        self, window: Window, low_confidence: float = LOW_CONFIDENCE
    ) -> rollups.Tiers | None:
        """The roll-up tiers the window reads, or None for the raw tables alone (the roll-ups
        count low confidence at LOW_CONFIDENCE only)."""
        if window.bucket < rollups.HOUR or low_confidence != LOW_CONFIDENCE:
            return None
        rows = await self.fetch("rolled_until", rollups.ROLLED_UNTIL)
        return rollups.tiers_for(window, rows[0][0])

    async def summary(self, window: Window, low_confidence: float) -> Summary:
        """Headline numbers of the window."""
        tiers = await self._tiers(window, low_confidence)
        if tiers is not None:
            heads, bins = await asyncio.gather(
                self.fetch("rolled_summary", rollups.SUMMARY, *tiers.args()),
                self.fetch("rolled_latency_bins", rollups.LATENCY_BINS, *tiers.args()),
            )
            head, histogram = heads[0], (bins[0]["bins"], bins[0]["counts"])
            return Summary(
                predictions=head["predictions"],
                cats=head["cats"],
                p50_ms=rollups.latency_percentile(*histogram, 0.5, head["max_ms"]),
                p95_ms=rollups.latency_percentile(*histogram, 0.95, head["max_ms"]),
                low_confidence=head["low_confidence"],
                consented=head["consented"],
                feedback=head["feedback"],
                satisfied=head["satisfied"],
            )
        heads, feedbacks = await asyncio.gather(
            self.fetch("summary", SUMMARY, window.start, window.end, low_confidence),
            self.fetch("feedback_summary", FEEDBACK_SUMMARY, window.start, window.end),
        )
        head, feedback = heads[0], feedbacks[0]
        return Summary(
            predictions=head["predictions"],
            cats=head["cats"],
            p50_ms=head["p50_ms"],
            p95_ms=head["p95_ms"],
            low_confidence=head["low_confidence"],
            consented=head["consented"],
            feedback=feedback["feedback"],
            satisfied=feedback["satisfied"],
        )

    async def health(self) -> list[health.Verdict]:
        """Each objective's verdict now (see `health.py`)."""
        facts, checks = await asyncio.gather(
            self.fetch("health", health.HEALTH_FACTS),
            self.fetch("health_check", health.ACTIVE_CHECK),
        )
        return health.verdicts(dict(facts[0]), dict(checks[0]) if checks else None)

    async def latest_prediction_time(self) -> datetime | None:
        """When the newest prediction was made, over the whole table."""
        rows = await self.fetch("latest_prediction", LATEST_PREDICTION)
        value: datetime | None = rows[0][0]
        return value

    async def series(self, window: Window, threshold: float) -> list[asyncpg.Record]:
        """(bucket, label, version, n, low, consented): per bucket, class and model version."""
        tiers = await self._tiers(window, threshold)
        if tiers is not None:
            return await self.fetch("rolled_series", rollups.SERIES, *tiers.args(), window.bucket)
        return await self.fetch(
            "series", SERIES, window.start, window.end, window.bucket, threshold
        )

    async def latency_series(self, window: Window) -> list[asyncpg.Record]:
        """(bucket, p50, p95, max) of inference time in ms."""
        tiers = await self._tiers(window)
        if tiers is not None:
            rows = await self.fetch(
                "rolled_latency_series", rollups.LATENCY_SERIES, *tiers.args(), window.bucket
            )
            return [
                {
                    "bucket": row["bucket"],
                    "p50": rollups.latency_percentile(row["bins"], row["counts"], 0.5, row["max"]),
                    "p95": rollups.latency_percentile(row["bins"], row["counts"], 0.95, row["max"]),
                    "max": row["max"],
                }
                for row in rows
            ]
        return await self.fetch(
            "latency_series", LATENCY_SERIES, window.start, window.end, window.bucket
        )

    async def latency_histogram(self, window: Window) -> list[asyncpg.Record]:
        """(bin, n) over LATENCY_EDGES_MS; bin i counts [edge[i-1], edge[i])."""
        tiers = await self._tiers(window)
        if tiers is not None:
            return await self.fetch(
                "rolled_latency_histogram", rollups.HISTOGRAM, *tiers.args(), "latency_bar"
            )
        return await self.fetch(
            "latency_histogram", LATENCY_HISTOGRAM, window.start, window.end, LATENCY_EDGES_MS
        )

    async def confidence_histogram(self, window: Window) -> list[asyncpg.Record]:
        """(bin, n): confidence in CONFIDENCE_BINS equal bins over [0.5, 1]."""
        tiers = await self._tiers(window)
        if tiers is not None:
            return await self.fetch(
                "rolled_confidence_histogram", rollups.HISTOGRAM, *tiers.args(), "confidence"
            )
        return await self.fetch(
            "confidence_histogram", CONFIDENCE_HISTOGRAM, window.start, window.end, CONFIDENCE_BINS
        )

    async def feedback_series(self, window: Window) -> list[asyncpg.Record]:
        """(bucket, n, satisfied): feedback received per bucket (by prediction time)."""
        tiers = await self._tiers(window)
        if tiers is not None:
            return await self.fetch(
                "rolled_feedback_series", rollups.FEEDBACK_SERIES, *tiers.args(), window.bucket
            )
        return await self.fetch(
            "feedback_series", FEEDBACK_SERIES, window.start, window.end, window.bucket
        )

    async def versions(self, window: Window) -> list[VersionFigures]:
        """Every version that answered in the window (most answers first), then the shadows."""
        tiers = await self._tiers(window)
        if tiers is not None:
            served, shadows = await self._rolled_versions(tiers)
        else:
            answers, feedback, shadow_rows = await asyncio.gather(
                self.fetch("version_answers", VERSION_ANSWERS, window.start, window.end),
                self.fetch("version_feedback", VERSION_FEEDBACK, window.start, window.end),
                self.fetch("shadow_answers", SHADOW_ANSWERS, window.start, window.end),
            )
            labels = {row["version"]: (row["labelled"], row["correct"]) for row in feedback}
            served = [
                {**row, "labelled": labels.get(row["version"], (0, 0))[0],
                 "correct": labels.get(row["version"], (0, 0))[1], "agreed": None}
                for row in answers
            ]  # fmt: skip
            shadows = [dict(row) for row in shadow_rows]
        total = sum(row["answers"] for row in served)
        return [_version_figures(row, shadow=False, total=total) for row in served] + [
            _version_figures(row, shadow=True, total=total) for row in shadows
        ]

    async def _rolled_versions(
        self, tiers: rollups.Tiers
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(served, shadows) as the raw queries give them, from the roll-ups."""
        rows, bins = await asyncio.gather(
            self.fetch("rolled_versions", rollups.VERSIONS, *tiers.args()),
            self.fetch("rolled_version_bins", rollups.VERSION_BINS, *tiers.args()),
        )
        latencies = {(row["version"], row["shadow"]): (row["bins"], row["counts"]) for row in bins}
        found: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], [])
        for row in rows:
            histogram = latencies.get((row["version"], row["shadow"]), (None, None))
            found[row["shadow"]].append(
                {
                    **row,
                    "cats": row["cats"] or 0,
                    "p50_ms": rollups.latency_percentile(*histogram, 0.5, row["max_ms"]),
                    "p95_ms": rollups.latency_percentile(*histogram, 0.95, row["max_ms"]),
                }
            )
        return found

    async def watch_series(self, window: Window) -> list[asyncpg.Record]:
        """(bucket, version, drift and accuracy figures): the model watch's checks per bucket."""
        return await self.fetch(
            "watch_series", WATCH_SERIES, window.start, window.end, window.bucket
        )

    async def watch_latest(self, window: Window) -> list[asyncpg.Record]:
        """Each version's newest check of the window, with its newest reliability curve."""
        return await self.fetch("watch_latest", WATCH_LATEST, window.start, window.end)

    async def latest(self, window: Window, limit: int) -> list[asyncpg.Record]:
        """The newest predictions of the window, newest first."""
        return await self.fetch("latest", LATEST, window.start, window.end, limit)
