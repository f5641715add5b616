"""The seed command writes the rows it promises, shaped like production traffic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from services.dashboard.seed import (
    NEW_VERSION,
    OLD_VERSION,
    SHADOW_VERSION,
    WATCH_CHECKS,
    seed,
)


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


def test_seed_stores_feedback_and_shadow_answers_as_the_services_do(
    database_url: str, db: psycopg.Connection
) -> None:
    end = datetime(2026, 6, 1, tzinfo=UTC)
    seed(database_url, rows=6000, days=30, end=end, progress=False)
    feedback = db.execute(
        """
        SELECT count(*), count(m.user_feedback),
               count(*) FILTER (WHERE (f.satisfaction = 'satisfied') <> (m.user_feedback = 1)),
               count(f.true_label),
               count(*) FILTER (WHERE f.true_label IS NOT NULL
                                AND (f.true_label = m.prediction_result)
                                    <> (f.satisfaction = 'satisfied')),
               count(*) FILTER (WHERE f.consent_at < m.created_at OR NOT m.rgpd_consent)
        FROM feedback f JOIN monitoring m ON m.id = f.prediction_id
        """
    ).fetchone()
    assert feedback is not None
    rows, verdicts, mismatched, labelled, contradictory, before_or_unconsented = feedback
    assert (
        rows == verdicts == db.execute("SELECT count(user_feedback) FROM monitoring").fetchone()[0]
    )
    assert rows > 0
    assert mismatched == contradictory == before_or_unconsented == 0
    assert labelled == pytest.approx(0.4 * rows, rel=0.3)
    shadow = db.execute(
        """
        SELECT count(*), min(m.created_at), count(DISTINCT s.model_version),
               avg((s.prediction_result = m.prediction_result)::int)::float8
        FROM shadow_predictions s JOIN monitoring m ON m.id = s.prediction_id
        """
    ).fetchone()
    assert shadow is not None
    count, first, versions, agreement = shadow
    tail = db.execute(
        "SELECT count(*) FROM monitoring WHERE created_at >= %s", (end - timedelta(days=3),)
    ).fetchone()
    assert tail is not None
    assert count == tail[0] > 0, "every photo of the last tenth of the period is shadowed"
    assert first >= end - timedelta(days=3)
    assert versions == 1
    assert 0.7 < agreement < 0.99


def test_seed_writes_the_model_watch_checks_with_one_drift_episode(
    database_url: str, db: psycopg.Connection
) -> None:
    end = datetime(2026, 6, 1, tzinfo=UTC)
    seed(database_url, rows=1000, days=30, end=end, progress=False)
    per_version = dict(
        db.execute(
            "SELECT model_version, count(*) FROM drift_checks"
            " WHERE at >= %s AND at < %s GROUP BY 1",
            (end - timedelta(days=30), end),
        ).fetchall()
    )
    # WATCH_CHECKS over the month while each version served: the old one up to the end of its
    # 7-day rollout, the new one from its start at 70 %, the shadow over the last 10 %.
    assert per_version[OLD_VERSION] == pytest.approx(WATCH_CHECKS * (0.7 + 7 / 30), abs=2)
    assert per_version[NEW_VERSION] == pytest.approx(WATCH_CHECKS * 0.3, abs=2)
    assert per_version[SHADOW_VERSION] == pytest.approx(WATCH_CHECKS * 0.1, abs=2)
    drifted = db.execute(
        "SELECT min(at), max(at), count(*) FILTER (WHERE drift_p_value >= 0.01)"
        " FROM drift_checks WHERE drift_score > drift_threshold"
    ).fetchone()
    assert drifted is not None
    start = end - timedelta(days=30)
    assert (
        start + timedelta(days=0.45 * 30)
        <= drifted[0]
        < drifted[1]
        < start + timedelta(days=0.48 * 30)
    )
    assert drifted[2] == 0  # over the threshold is p < DRIFT_ALPHA, as the watch writes it
    invalid = db.execute(
        "SELECT count(*) FROM drift_checks WHERE jsonb_array_length(reliability->'count') <> 15"
        " OR estimated_accuracy NOT BETWEEN 0 AND 1"
    ).fetchone()
    assert invalid == (0,)
