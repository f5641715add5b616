"""The seed command writes the rows it promises, shaped like production traffic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from services.dashboard.seed import seed


def test_seed_writes_realistic_rows_within_the_period(
    database_url: str, db: psycopg.Connection
) -> None:
    end = datetime(2026, 6, 1, tzinfo=UTC)
    assert seed(database_url, rows=6000, days=30, end=end, progress=False) == 6000
    stats = db.execute(
        """
        SELECT count(*), min(created_at), max(created_at),
               avg(rgpd_consent::int)::float8, count(user_feedback),
               count(*) FILTER (WHERE user_feedback IS NOT NULL AND NOT rgpd_consent),
               count(DISTINCT model_version), count(DISTINCT id),
               count(*) FILTER (WHERE abs(proba_cat + proba_dog - 1) > 1e-5),
               count(*) FILTER (WHERE confidence <> greatest(proba_cat, proba_dog)
                                AND abs(confidence - greatest(proba_cat, proba_dog)) > 1e-5)
        FROM monitoring
        """
    ).fetchone()
    assert stats is not None
    count, first, last, consent, feedback, without_consent, versions, ids, bad_sum, bad_conf = stats
    assert count == ids == 6000
    assert end - timedelta(days=30) <= first < last <= end
    assert consent == pytest.approx(0.35, abs=0.03)
    assert 0 < feedback < count * 0.15
    assert without_consent == 0
    assert versions == 2
    assert bad_sum == bad_conf == 0
    night, afternoon = db.execute(
        "SELECT count(*) FILTER (WHERE extract(hour FROM created_at AT TIME ZONE 'UTC') = 3),"
        "       count(*) FILTER (WHERE extract(hour FROM created_at AT TIME ZONE 'UTC') = 15)"
        " FROM monitoring"
    ).fetchone() or (0, 0)
    assert afternoon > 3 * night
