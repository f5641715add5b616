"""Simultaneous feedback on one prediction: serialised, so exactly one is the first."""

from __future__ import annotations

import asyncio

import psycopg

from services.common.db import Database
from services.feedback.repository import Feedback, FeedbackOutcome, FeedbackRepository
from services.feedback.tests.conftest import insert_prediction
from tests.support.running import run_async


async def record_all(database_url: str, feedbacks: list[Feedback]) -> list[FeedbackOutcome]:
    """Send every feedback at once through the service's repository."""
    database = Database(database_url, max_size=len(feedbacks))
    await database.start()
    try:
        repository = FeedbackRepository(database, wait_for_prediction_s=1, acquire_timeout_s=5)
        return await asyncio.gather(*(repository.record_feedback(one) for one in feedbacks))
    finally:
        await database.close()


def test_concurrent_feedback_has_one_first_and_a_consistent_latest(
    database_url: str, db: psycopg.Connection
) -> None:
    prediction_id = insert_prediction(db)
    verdicts = ["satisfied", "unsatisfied"] * 5
    feedbacks = [Feedback(prediction_id, verdict, rgpd_consent=True) for verdict in verdicts]

    outcomes = run_async(record_all(database_url, feedbacks))

    assert [outcome.previous for outcome in outcomes].count(None) == 1
    satisfaction, revision = db.execute(
        "SELECT satisfaction, revision FROM feedback WHERE prediction_id = %s", (prediction_id,)
    ).fetchone()  # type: ignore[misc]
    assert revision == len(feedbacks)
    user_feedback = db.execute(
        "SELECT user_feedback FROM monitoring WHERE id = %s", (prediction_id,)
    ).fetchone()
    assert user_feedback == (1 if satisfaction == "satisfied" else 0,)
