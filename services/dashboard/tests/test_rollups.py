"""The roll-ups: long windows read them and get the raw tables' figures; every later write,
erasure and purge keeps them equal to the raw rows; their constants are the Python ones."""

from __future__ import annotations

import math
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import numpy as np
import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from harness.waiting import wait_until
from services.common.db import Database
from services.common.thresholds import LOW_CONFIDENCE
from services.dashboard import rollups
from services.dashboard.app import create_app
from services.dashboard.queries import CONFIDENCE_BINS, LATENCY_EDGES_MS, Queries
from services.dashboard.seed import seed
from services.dashboard.settings import Settings
from services.dashboard.tests.test_queries import run
from services.dashboard.window import Window, resolve
from tests.support.postgres import rollup_mismatches
from tests.support.running import run_async

T = TypeVar("T")
NOW = datetime.now(UTC).replace(microsecond=0)
GRACE = timedelta(minutes=2)


def roll(database_url: str) -> datetime:
    """Catch the roll-ups up, as the dashboard's loop does."""

    async def main() -> datetime:
        database = Database(database_url, max_size=1, probe_interval_s=60)
        await database.start()
        try:
            async with database.connection() as connection:
                return await rollups.catch_up(connection, grace=GRACE)
        finally:
            await database.close()

    return run_async(main())


async def everything(queries: Queries, window: Window) -> dict[str, Any]:
    return {
        "summary": await queries.summary(window, LOW_CONFIDENCE),
        "series": [dict(row) for row in await queries.series(window, LOW_CONFIDENCE)],
        "latency": [dict(row) for row in await queries.latency_series(window)],
        "latency_histogram": [dict(r) for r in await queries.latency_histogram(window)],
        "confidence": [dict(row) for row in await queries.confidence_histogram(window)],
        "feedback": [dict(row) for row in await queries.feedback_series(window)],
        "versions": await queries.versions(window),
    }


def close(rolled: float | None, exact: float | None, what: str) -> None:
    """An interpolated percentile: within one 5 % bin of the exact one."""
    assert (rolled is None) == (exact is None), what
    if rolled is not None and exact is not None:
        assert abs(rolled - exact) <= 0.05 * exact + 1e-9, (what, rolled, exact)


def same_figures(rolled: dict[str, Any], raw: dict[str, Any]) -> None:
    r, e = rolled["summary"], raw["summary"]
    for field in ("predictions", "cats", "low_confidence", "consented", "feedback", "satisfied"):
        assert getattr(r, field) == getattr(e, field), field
    close(r.p50_ms, e.p50_ms, "summary p50")
    close(r.p95_ms, e.p95_ms, "summary p95")
    for name in ("series", "latency_histogram", "confidence", "feedback"):
        assert rolled[name] == raw[name], name
    assert [row["bucket"] for row in rolled["latency"]] == [row["bucket"] for row in raw["latency"]]
    for mine, exact in zip(rolled["latency"], raw["latency"], strict=True):
        assert mine["max"] == exact["max"]
        close(mine["p50"], exact["p50"], f"p50 of {exact['bucket']}")
        close(mine["p95"], exact["p95"], f"p95 of {exact['bucket']}")
    keyed = {(v.version, v.shadow): v for v in rolled["versions"]}
    assert [(v.version, v.shadow) for v in rolled["versions"]] == [
        (v.version, v.shadow) for v in raw["versions"]
    ]
    for exact in raw["versions"]:
        mine = keyed[(exact.version, exact.shadow)]
        for field in ("role", "answers", "cats", "labelled", "correct", "agreed"):
            assert getattr(mine, field) == getattr(exact, field), (exact.version, field)
        assert mine.share == pytest.approx(exact.share)
        assert mine.mean_confidence == pytest.approx(exact.mean_confidence)
        close(mine.p50_ms, exact.p50_ms, f"{exact.version} p50")
        close(mine.p95_ms, exact.p95_ms, f"{exact.version} p95")


def query_count(name: str) -> float:
    return REGISTRY.get_sample_value("cv_dashboard_query_seconds_count", {"query": name}) or 0.0


# Every tier: hourly only (7 days, 1 h buckets), hourly with 6 h buckets (30 days), and
# daily with hourly and raw edges (a custom range of whole days, and 90 days ending now).
WINDOWS = {
    "7d": resolve("7d", None, None, now=NOW),
    "30d": resolve("30d", None, None, now=NOW),
    "custom": resolve(
        "custom", (NOW - timedelta(days=40)).date().isoformat(), NOW.date().isoformat(), now=NOW
    ),
    "90d": Window(NOW - timedelta(days=90), NOW, timedelta(days=1)),
}


def test_long_windows_read_the_rollups_and_get_the_raw_figures(
    database_url: str, db: psycopg.Connection
) -> None:
    seed(database_url, rows=20_000, days=45, end=NOW, progress=False)
    raw = {name: run(database_url, lambda q, w=w: everything(q, w)) for name, w in WINDOWS.items()}
    assert all(result["summary"].predictions > 1000 for result in raw.values())
    assert any(v.shadow for v in raw["30d"]["versions"]), "the seed has shadow answers"

    watermark = roll(database_url)

    assert watermark == rollups.floor_to(datetime.now(UTC) - GRACE, rollups.HOUR)
    assert rollup_mismatches(db) == []
    used = query_count("rolled_series")
    for name, window in WINDOWS.items():
        tiers = rollups.tiers_for(window, watermark)
        assert tiers is not None, name
        rolled = run(database_url, lambda q, w=window: everything(q, w))
        same_figures(rolled, raw[name])
    assert query_count("rolled_series") == used + len(WINDOWS)
    daily = rollups.tiers_for(WINDOWS["90d"], watermark)
    assert daily is not None and daily.days < daily.days_end


def test_short_windows_keep_exact_percentiles_from_the_raw_rows(database_url: str) -> None:
    seed(database_url, rows=2_000, days=2, end=NOW, progress=False)
    roll(database_url)
    used = query_count("rolled_summary")
    summary = run(database_url, lambda q: q.summary(resolve("24h", None, None), LOW_CONFIDENCE))
    assert summary.predictions > 0
    assert query_count("rolled_summary") == used


def insert(db: psycopg.Connection, at: datetime, **values: Any) -> uuid.UUID:
    prediction_id = uuid.uuid4()
    row = {
        "result": "cat", "confidence": 0.9, "ms": 12.0, "version": "v1", "feedback": None,
        "consent": False, **values,
    }  # fmt: skip
    proba_cat = row["confidence"] if row["result"] == "cat" else 1 - row["confidence"]
    db.execute(
        "INSERT INTO monitoring (id, created_at, prediction_result, proba_cat, proba_dog,"
        " confidence, inference_time_ms, model_version, user_feedback, rgpd_consent)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (prediction_id, at, row["result"], proba_cat, 1 - proba_cat, row["confidence"],
         row["ms"], row["version"], row["feedback"], row["consent"]),
    )  # fmt: skip
    return prediction_id


def hour_total(db: psycopg.Connection, at: datetime, column: str = "predictions") -> int:
    found = db.execute(
        f"SELECT coalesce(sum({column}), 0) FROM monitoring_hourly "
        "WHERE period_start = monitoring_rollup_hour(%s) AND NOT shadow",
        (at,),
    ).fetchone()
    assert found is not None
    return int(found[0])


def test_every_later_write_erasure_and_purge_re_rolls_its_hour(
    database_url: str, db: psycopg.Connection
) -> None:
    past = rollups.floor_to(NOW - timedelta(days=3), rollups.HOUR) + timedelta(minutes=5)
    ids = [insert(db, past + timedelta(minutes=i), consent=True) for i in range(5)]
    insert(db, NOW - timedelta(days=10))
    roll(database_url)
    assert hour_total(db, past) == 5

    # A prediction written late (inference after an outage) into a rolled hour.
    late = insert(db, past + timedelta(minutes=30), result="dog", confidence=0.6, ms=900.0)
    assert hour_total(db, past) == 6
    assert hour_total(db, past, "low_confidence") == 1
    # Feedback, as the feedback service stores it: the row, then the prediction's columns.
    db.execute(
        "INSERT INTO feedback (prediction_id, satisfaction, true_label, consent_at) "
        "VALUES (%s, 'unsatisfied', 'dog', now())",
        (ids[0],),
    )
    db.execute("UPDATE monitoring SET user_feedback = 0 WHERE id = %s", (ids[0],))
    assert hour_total(db, past, "feedback") == 1
    assert hour_total(db, past, "labelled") == 1
    assert hour_total(db, past, "correct") == 0
    # A shadow's answer, scored after the hour closed.
    db.execute(
        "INSERT INTO shadow_predictions (prediction_id, model_version, prediction_result,"
        " proba_cat, confidence, inference_time_ms) VALUES (%s, 'v2', 'dog', 0.2, 0.8, 30)",
        (ids[1],),
    )
    assert rollup_mismatches(db) == []
    # Erasure: the prediction, its feedback and its shadow answers leave every aggregate.
    db.execute("DELETE FROM monitoring WHERE id = ANY(%s)", ([ids[0], ids[1], late],))
    assert hour_total(db, past) == 3
    assert hour_total(db, past, "feedback") == 0
    assert hour_total(db, past, "latency_max_ms") < 900, "an erased maximum does not survive"
    assert rollup_mismatches(db) == []
    # Retention: every prediction of the older day goes, and its hour and day rows with it.
    db.execute("DELETE FROM monitoring WHERE created_at < %s", (NOW - timedelta(days=5),))
    assert rollup_mismatches(db) == []
    left = db.execute("SELECT min(period_start) FROM monitoring_daily").fetchone()
    assert left is not None and left[0] >= rollups.floor_to(past, rollups.DAY)


def test_a_late_write_during_a_roll_up_is_not_lost(
    database_url: str, db: psycopg.Connection
) -> None:
    past = rollups.floor_to(NOW - timedelta(hours=5), rollups.HOUR)
    insert(db, past)
    rolling = psycopg.connect(database_url)
    # The roll-up has read the hour and not committed; a late write to that hour arrives.
    rolling.execute("SELECT monitoring_rollup_advance(%s, 1000)", (NOW - GRACE,))
    writer_done = threading.Event()

    def late_write() -> None:
        with psycopg.connect(database_url, autocommit=True) as other:
            insert(other, past + timedelta(minutes=1))
        writer_done.set()

    writer = threading.Thread(target=late_write)
    writer.start()
    time.sleep(0.5)
    assert not writer_done.is_set(), "the late write waits for the roll-up to commit"
    rolling.commit()
    rolling.close()
    writer.join(timeout=10)
    assert writer_done.is_set()
    assert hour_total(db, past) == 2
    assert rollup_mismatches(db) == []


def test_the_rollups_bin_and_count_as_the_dashboard_does(
    database_url: str, db: psycopg.Connection
) -> None:
    # Values on and around every edge: LOW_CONFIDENCE, the latency bars, the confidence bins.
    at = rollups.floor_to(NOW - timedelta(days=2), rollups.HOUR)
    confidences = [LOW_CONFIDENCE, LOW_CONFIDENCE - 1e-9, 0.5, 1.0] + [
        0.5 + i * 0.5 / CONFIDENCE_BINS for i in range(CONFIDENCE_BINS + 1)
    ]
    latencies = [0.0, 0.05, 0.1, 1e5] + [
        e for edge in LATENCY_EDGES_MS for e in (edge, edge - 1e-6)
    ]
    for i, (confidence, ms) in enumerate(zip(confidences * 3, latencies, strict=False)):
        insert(db, at + timedelta(seconds=i), confidence=confidence, ms=max(ms, 0.0))
    roll(database_url)
    window = Window(rollups.floor_to(at, rollups.DAY), NOW, timedelta(days=1))
    raw_window = Window(window.start, window.end, timedelta(minutes=15))
    rolled = run(database_url, lambda q: everything(q, window))
    raw = run(database_url, lambda q: everything(q, raw_window))
    assert rolled["summary"].low_confidence == raw["summary"].low_confidence > 0
    assert rolled["latency_histogram"] == raw["latency_histogram"]
    assert rolled["confidence"] == raw["confidence"]
    for ms in (0.01, 0.1, 0.2, 1.0, 12.5, 480.0, 61_000.0):
        found = db.execute("SELECT monitoring_latency_bin(%s)", (ms,)).fetchone()
        assert found is not None
        expected = math.floor(
            math.log(max(ms, rollups.LATENCY_BIN_BASE_MS) / rollups.LATENCY_BIN_BASE_MS)
            / math.log(rollups.LATENCY_BIN_RATIO)
        )
        assert found[0] == expected, ms


def test_percentiles_from_a_histogram_stay_within_one_bin_of_the_exact_ones() -> None:
    rng = np.random.default_rng(3)
    for sample in (rng.lognormal(3, 0.6, 5_000), rng.uniform(1, 400, 997), np.array([7.0])):
        bins: dict[int, int] = {}
        for value in sample:
            index = math.floor(math.log(max(value, 0.1) / 0.1) / math.log(1.05))
            bins[index] = bins.get(index, 0) + 1
        ordered = sorted(bins)
        counts = [bins[index] for index in ordered]
        for q in (0.5, 0.95, 0.99):
            exact = float(np.quantile(sample, q))
            found = rollups.latency_percentile(ordered, counts, q, float(sample.max()))
            close(found, exact, str(q))
    assert rollups.latency_percentile([], [], 0.5) is None


def test_tiers_follow_the_buckets_and_the_watermark() -> None:
    start = datetime(2026, 1, 1, 7, 30, tzinfo=UTC)
    end = datetime(2026, 3, 1, 10, 15, tzinfo=UTC)
    rolled = datetime(2026, 2, 20, 5, tzinfo=UTC)
    hourly = rollups.tiers_for(Window(start, end, timedelta(hours=6)), rolled)
    assert hourly is not None
    assert (hourly.hours, hourly.days, hourly.days_end, hourly.rolled) == (
        datetime(2026, 1, 1, 8, tzinfo=UTC), rolled, rolled, rolled,
    )  # fmt: skip
    daily = rollups.tiers_for(Window(start, end, timedelta(days=2)), rolled)
    assert daily is not None
    assert (daily.days, daily.days_end) == (
        datetime(2026, 1, 2, tzinfo=UTC), datetime(2026, 2, 20, tzinfo=UTC),
    )  # fmt: skip
    assert rollups.tiers_for(Window(start, end, timedelta(minutes=15)), rolled) is None
    assert rollups.tiers_for(Window(start, end, timedelta(hours=6)), None) is None
    assert (
        rollups.tiers_for(Window(end, end + timedelta(days=9), timedelta(hours=1)), rolled) is None
    )


def test_the_dashboard_rolls_closed_hours_on_its_own(
    dashboard_settings: Settings, db: psycopg.Connection
) -> None:
    insert(db, NOW - timedelta(hours=30))
    settings = dashboard_settings.model_copy(update={"rollup_interval_s": 0.2})
    runs = REGISTRY.get_sample_value("cv_dashboard_rollup_runs_total", {"outcome": "ok"}) or 0
    with TestClient(create_app(settings)):

        def rolled() -> bool:
            found = db.execute("SELECT rolled_until FROM monitoring_rollup_state").fetchone()
            closed = rollups.floor_to(NOW - GRACE, rollups.HOUR)
            return found is not None and found[0] is not None and found[0] >= closed

        assert wait_until(rolled, timeout_s=15)
        assert hour_total(db, NOW - timedelta(hours=30)) == 1
        watermark = REGISTRY.get_sample_value("cv_dashboard_rollup_watermark_timestamp_seconds")
        assert watermark == rollups.floor_to(NOW - GRACE, rollups.HOUR).timestamp()
    after = REGISTRY.get_sample_value("cv_dashboard_rollup_runs_total", {"outcome": "ok"})
    assert after is not None and after > runs


def test_emptying_the_predictions_empties_the_rollups(
    database_url: str, db: psycopg.Connection
) -> None:
    insert(db, NOW - timedelta(days=1))
    roll(database_url)
    assert hour_total(db, NOW - timedelta(days=1)) == 1
    db.execute("TRUNCATE monitoring CASCADE")
    for table in ("monitoring_hourly", "monitoring_hourly_bins", "monitoring_daily"):
        found = db.execute(f"SELECT count(*) FROM {table}").fetchone()
        assert found == (0,), table
    assert db.execute("SELECT rolled_until FROM monitoring_rollup_state").fetchone() == (None,)


def test_a_writer_in_another_time_zone_keeps_days_of_24_hours(
    database_url: str, db: psycopg.Connection
) -> None:
    # The autumn and spring daylight-saving changes in Paris, hour by hour, rolled.
    for day in (datetime(2026, 3, 28, tzinfo=UTC), datetime(2026, 10, 24, tzinfo=UTC)):
        for hour in range(72):
            insert(db, day + timedelta(hours=hour, minutes=10))
    roll(database_url)
    with psycopg.connect(database_url, autocommit=True) as paris:
        paris.execute("SET TimeZone = 'Europe/Paris'")
        insert(paris, datetime(2026, 3, 29, 12, 30, tzinfo=UTC))
        insert(paris, datetime(2026, 10, 25, 12, 30, tzinfo=UTC))
        paris.execute(
            "DELETE FROM monitoring WHERE created_at = %s",
            (datetime(2026, 10, 26, 0, 10, tzinfo=UTC),),
        )
    assert rollup_mismatches(db) == []
    found = db.execute(
        "SELECT predictions FROM monitoring_daily WHERE period_start = %s",
        (datetime(2026, 3, 29, tzinfo=UTC),),
    ).fetchone()
    assert found == (25,)


def test_updates_that_move_a_row_re_roll_both_hours(
    database_url: str, db: psycopg.Connection
) -> None:
    first = rollups.floor_to(NOW - timedelta(days=2), rollups.HOUR)
    moved = insert(db, first + timedelta(minutes=5))
    other = insert(db, first + timedelta(hours=3))
    db.execute(
        "INSERT INTO shadow_predictions (prediction_id, model_version, prediction_result,"
        " proba_cat, confidence, inference_time_ms) VALUES (%s, 'v2', 'dog', 0.2, 0.8, 30)",
        (moved,),
    )
    db.execute(
        "INSERT INTO feedback (prediction_id, satisfaction, consent_at) "
        "VALUES (%s, 'satisfied', now())",
        (moved,),
    )
    roll(database_url)
    db.execute(
        "UPDATE monitoring SET created_at = %s WHERE id = %s", (first + timedelta(hours=5), moved)
    )
    db.execute("UPDATE shadow_predictions SET prediction_result = 'cat', inference_time_ms = 900")
    db.execute("UPDATE feedback SET prediction_id = %s", (other,))
    assert rollup_mismatches(db) == []
    assert hour_total(db, first) == 0


def test_late_writes_to_several_hours_take_turns_without_deadlock(
    database_url: str, db: psycopg.Connection
) -> None:
    day = rollups.floor_to(NOW - timedelta(days=2), rollups.DAY)
    insert(db, day + timedelta(hours=10))
    roll(database_url)
    first = psycopg.connect(database_url)
    insert(first, day + timedelta(hours=10, minutes=30))  # holds the refresh lock
    second_done = threading.Event()

    def second() -> None:
        with psycopg.connect(database_url) as other:
            insert(other, day + timedelta(hours=11, minutes=30))
            other.commit()
        second_done.set()

    writer = threading.Thread(target=second)
    writer.start()
    time.sleep(0.5)
    insert(first, day + timedelta(hours=11, minutes=45))  # the other's hour: no deadlock
    first.commit()
    first.close()
    writer.join(timeout=10)
    assert second_done.is_set()
    assert rollup_mismatches(db) == []
    assert hour_total(db, day + timedelta(hours=11)) == 2
