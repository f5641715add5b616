"""The SQL aggregates on a small hand-made dataset, checked against values worked out by hand."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import psycopg
import pytest

from services.common.db import Database
from services.dashboard.queries import Queries, Summary
from services.dashboard.window import resolve
from tests.support.running import run_async

T = TypeVar("T")
DAY = "2026-01-01"
# (time, class, confidence, inference ms, model version, feedback, consent)
ROWS = [
    ("2026-01-01 00:01:00", "cat", 0.951, 1.0, "v1", 1, True),
    ("2026-01-01 00:02:00", "cat", 0.701, 2.0, "v1", 0, True),
    ("2026-01-01 00:03:00", "dog", 0.991, 3.0, "v1", None, False),
    ("2026-01-01 00:04:00", "dog", 0.601, 4.0, "v2", None, False),
    ("2026-01-01 00:14:59", "cat", 0.851, 100.0, "v2", 1, True),
    ("2026-01-01 01:00:00", "dog", 1.0, 10.0, "v2", None, False),
    ("2026-01-01 01:10:00", "dog", 0.791, 20.0, "v2", 1, True),
    # Outside the day: just before it, and exactly at its (exclusive) end.
    ("2025-12-31 23:59:59", "cat", 0.99, 1.0, "v1", 1, True),
    ("2026-01-02 00:00:00", "dog", 0.99, 1.0, "v1", 0, True),
]
WINDOW = resolve("custom", DAY, DAY)
B0 = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
B1 = datetime(2026, 1, 1, 1, 0, tzinfo=UTC)


@pytest.fixture
def dataset(db: psycopg.Connection) -> None:
    """The rows above, inserted as the inference and feedback services would leave them."""
    for created, label, confidence, ms, version, feedback, consent in ROWS:
        proba_cat = confidence if label == "cat" else 1 - confidence
        db.execute(
            "INSERT INTO monitoring (id, created_at, prediction_result, proba_cat, proba_dog,"
            " confidence, inference_time_ms, model_version, user_feedback, rgpd_consent)"
            " VALUES (%s, (%s || '+00')::timestamptz, %s, %s, %s, %s, %s, %s, %s, %s)",
            (uuid.uuid4(), created, label, proba_cat, 1 - proba_cat, confidence, ms, version,
             feedback, consent),
        )  # fmt: skip


def run(database_url: str, work: Callable[[Queries], Awaitable[T]]) -> T:
    """Run one coroutine against a real pool, as the service does."""

    async def main() -> T:
        database = Database(database_url, max_size=2, probe_interval_s=60)
        await database.start()
        try:
            return await work(Queries(database, timeout_s=10))
        finally:
            await database.close()

    return run_async(main())


def as_dicts(rows: list[Any]) -> list[dict[str, Any]]:
    return [dict(row) for row in rows]


def test_custom_day_is_bucketed_by_quarter_hours() -> None:
    assert WINDOW.start == B0
    assert WINDOW.end == B0 + timedelta(days=1)
    assert WINDOW.bucket == timedelta(minutes=15)


@pytest.mark.usefixtures("dataset")
def test_summary_counts_and_exact_percentiles(database_url: str) -> None:
    summary = run(database_url, lambda q: q.summary(WINDOW, 0.8))
    # Inference times sorted: 1 2 3 4 10 20 100 -> p50 = 4; p95 at rank 5.7 = 20 + 0.7 * 80.
    assert summary == Summary(
        predictions=7, cats=3, p50_ms=4.0, p95_ms=pytest.approx(76.0), low_confidence=3,
        consented=4, feedback=4, satisfied=3,
    )  # fmt: skip


@pytest.mark.usefixtures("dataset")
def test_series_by_bucket_class_and_version(database_url: str) -> None:
    rows = as_dicts(run(database_url, lambda q: q.series(WINDOW, 0.8)))
    assert rows == [
        {"bucket": B0, "label": "cat", "version": "v1", "n": 2, "low": 1, "consented": 2},
        {"bucket": B0, "label": "cat", "version": "v2", "n": 1, "low": 0, "consented": 1},
        {"bucket": B0, "label": "dog", "version": "v1", "n": 1, "low": 0, "consented": 0},
        {"bucket": B0, "label": "dog", "version": "v2", "n": 1, "low": 1, "consented": 0},
        {"bucket": B1, "label": "dog", "version": "v2", "n": 2, "low": 1, "consented": 1},
    ]


@pytest.mark.usefixtures("dataset")
def test_latency_percentiles_per_bucket(database_url: str) -> None:
    rows = as_dicts(run(database_url, lambda q: q.latency_series(WINDOW)))
    assert rows == [
        # 1 2 3 4 100: p50 = 3, p95 at rank 3.8 = 4 + 0.8 * 96.
        {"bucket": B0, "p50": 3.0, "p95": pytest.approx(80.8), "max": 100.0},
        # 10 20: p50 = 15, p95 = 10 + 0.95 * 10.
        {"bucket": B1, "p50": 15.0, "p95": pytest.approx(19.5), "max": 20.0},
    ]


@pytest.mark.usefixtures("dataset")
def test_histograms(database_url: str) -> None:
    latency = {r["bin"]: r["n"] for r in run(database_url, lambda q: q.latency_histogram(WINDOW))}
    # Edges 0 2 4 6 8 10 15 20 ... 100 150: bin i counts [edge[i-1], edge[i]).
    assert latency == {1: 1, 2: 2, 3: 1, 6: 1, 8: 1, 13: 1}
    confidence = {
        r["bin"]: r["n"] for r in run(database_url, lambda q: q.confidence_histogram(WINDOW))
    }
    # 25 bins of 0.02 from 0.5; a confidence of exactly 1.0 belongs to the last bin.
    assert confidence == {6: 1, 11: 1, 15: 1, 18: 1, 23: 1, 25: 2}


@pytest.mark.usefixtures("dataset")
def test_feedback_series_counts_only_rows_with_feedback(database_url: str) -> None:
    rows = as_dicts(run(database_url, lambda q: q.feedback_series(WINDOW)))
    assert rows == [
        {"bucket": B0, "n": 3, "satisfied": 2},
        {"bucket": B1, "n": 1, "satisfied": 1},
    ]


@pytest.mark.usefixtures("dataset")
def test_latest_rows_are_the_newest_of_the_window(database_url: str) -> None:
    rows = run(database_url, lambda q: q.latest(WINDOW, 3))
    assert [row["inference_time_ms"] for row in rows] == [20.0, 10.0, 100.0]
    latest = run(database_url, lambda q: q.latest_prediction_time())
    assert latest == datetime(2026, 1, 2, tzinfo=UTC)
