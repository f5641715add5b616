"""Explicit SQL for feedback and the RGPD rights, on the shared asyncpg pool."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from services.common.db import Database
from services.common.errors import InvalidInput, NotFound
from services.feedback import metrics

T = TypeVar("T")

_FIRST_PAUSE_S = 0.02
SATISFACTION_SCORE = {"satisfied": 1, "unsatisfied": 0}


class PredictionNotFound(NotFound):
    """No prediction has this id (after waiting for a write in flight)."""


class ContradictoryFeedback(InvalidInput):
    """The true label contradicts the verdict (e.g. "satisfied" but another class)."""


class _Missing(Exception):
    """The row is not there yet; internal signal to wait and look again."""


@dataclass(frozen=True)
class Feedback:
    """One user's opinion on one prediction, as received."""

    prediction_id: uuid.UUID
    satisfaction: str
    rgpd_consent: bool
    true_label: str | None = None
    # Who sent it (the rate limits' client); stored only as a keyed digest.
    client: str = "unknown"


@dataclass(frozen=True)
class FeedbackOutcome:
    """What recording a feedback did."""

    stored: bool
    previous: str | None


# Locking the prediction serialises feedback on it. The earlier verdict is read by a second
# statement: under READ COMMITTED a joined row would come from the snapshot taken before the
# lock wait, missing a verdict committed meanwhile.
_LOCK_PREDICTION = "SELECT prediction_result FROM monitoring WHERE id = $1 FOR UPDATE"
_PREVIOUS_VERDICT = "SELECT satisfaction FROM feedback WHERE prediction_id = $1"
# The row is the latest verdict, so it names the client who gave that one.
_UPSERT_FEEDBACK = """
INSERT INTO feedback (prediction_id, satisfaction, true_label, consent_at, client_key)
SELECT $1, $2, $3, now(), sha256(secret || convert_to($4, 'UTF8')) FROM client_key_secret
ON CONFLICT (prediction_id) DO UPDATE
SET satisfaction = EXCLUDED.satisfaction,
    true_label = EXCLUDED.true_label,
    consent_at = EXCLUDED.consent_at,
    client_key = EXCLUDED.client_key,
    updated_at = now(),
    revision = feedback.revision + 1
"""
_SET_MONITORING_FEEDBACK = """
UPDATE monitoring SET user_feedback = $2, rgpd_consent = $3 WHERE id = $1
"""
# Only a digest of the id: enough to refuse a late re-insert, nothing that identifies anyone.
_TOMBSTONE = """
INSERT INTO erased_predictions (id_sha256) VALUES (sha256(uuid_send($1::uuid)))
ON CONFLICT (id_sha256) DO NOTHING
"""
_EXPORT_PREDICTION = """
SELECT m.id AS prediction_id, m.created_at, m.prediction_result AS prediction, m.proba_cat,
       m.proba_dog, m.confidence, m.pet_score, m.inference_time_ms, m.model_version,
       m.rgpd_consent, m.user_feedback,
       f.satisfaction, f.true_label, f.consent_at, f.created_at AS feedback_created_at,
       f.updated_at AS feedback_updated_at, f.revision,
       p.created_at AS photo_created_at, p.content_type AS photo_content_type,
       p.image AS photo,
       e.created_at AS embedding_created_at, e.model_version AS embedding_model_version,
       e.embedding
FROM monitoring m
LEFT JOIN feedback f ON f.prediction_id = m.id
LEFT JOIN prediction_photos p ON p.prediction_id = m.id
LEFT JOIN prediction_embeddings e ON e.prediction_id = m.id
WHERE m.id = $1
"""
_EXPORT_FEEDBACK_PAGE = """
SELECT f.prediction_id, f.satisfaction, f.true_label, f.consent_at, f.created_at,
       f.updated_at, f.revision, m.created_at AS predicted_at, m.prediction_result AS prediction,
       m.proba_cat, m.proba_dog, m.model_version,
       (p.prediction_id IS NOT NULL) AS has_photo
FROM feedback f
JOIN monitoring m ON m.id = f.prediction_id
LEFT JOIN prediction_photos p ON p.prediction_id = f.prediction_id
WHERE $1::uuid IS NULL OR f.prediction_id > $1::uuid
ORDER BY f.prediction_id
LIMIT $2
"""
_LIVE_ACCURACY = """
SELECT count(*) AS predictions, avg((satisfaction = 'satisfied')::int)::float8 AS ratio
FROM feedback
WHERE updated_at >= now() - make_interval(secs => $1)
"""


def check_consistent(feedback: Feedback, predicted: str) -> None:
    """A true label must agree with the verdict, or it would poison the training export."""
    if feedback.true_label is None:
        return
    right = feedback.true_label == predicted
    if right and feedback.satisfaction == "unsatisfied":
        raise ContradictoryFeedback(
            f"true_label '{feedback.true_label}' is what was predicted: the prediction was right"
        )
    if not right and feedback.satisfaction == "satisfied":
        raise ContradictoryFeedback(
            f"true_label '{feedback.true_label}' contradicts 'satisfied': "
            f"the prediction was '{predicted}'"
        )


class FeedbackRepository:
    """Every query of the service; PostgreSQL's failures come out as `DatabaseUnavailable`."""

    def __init__(
        self, database: Database, *, wait_for_prediction_s: float, acquire_timeout_s: float
    ) -> None:
        self._database = database
        self._wait_s = wait_for_prediction_s
        self._acquire_timeout_s = acquire_timeout_s

    def _connection(self) -> contextlib.AbstractAsyncContextManager[asyncpg.Connection]:
        return self._database.connection(acquire_timeout_s=self._acquire_timeout_s)

    async def _until_present(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run `attempt` until it stops raising `_Missing` or the wait runs out.

        Inference writes a prediction a few milliseconds after answering, so a user quick on
        the button may reach us before the row exists: a short bounded wait avoids a false 404.
        """
        deadline = time.monotonic() + self._wait_s
        pause = _FIRST_PAUSE_S
        while True:
            try:
                return await attempt()
            except _Missing:
                if pause == _FIRST_PAUSE_S:
                    metrics.PREDICTION_WAITS.inc()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PredictionNotFound(
                        "no prediction has this id (it may have been erased or purged)"
                    ) from None
                await asyncio.sleep(min(pause, remaining))
                pause = min(pause * 2, 0.25)

    async def record_feedback(self, feedback: Feedback) -> FeedbackOutcome:
        """Store (with consent) or forget (without) the latest opinion on a prediction."""

        async def attempt() -> FeedbackOutcome:
            async with self._connection() as connection, connection.transaction():
                predicted = await connection.fetchval(_LOCK_PREDICTION, feedback.prediction_id)
                if predicted is None:
                    raise _Missing
                check_consistent(feedback, predicted)
                previous: str | None = await connection.fetchval(
                    _PREVIOUS_VERDICT, feedback.prediction_id
                )
                if feedback.rgpd_consent:
                    await connection.execute(
                        _UPSERT_FEEDBACK,
                        feedback.prediction_id,
                        feedback.satisfaction,
                        feedback.true_label,
                        feedback.client,
                    )
                    score = SATISFACTION_SCORE[feedback.satisfaction]
                    await connection.execute(
                        _SET_MONITORING_FEEDBACK, feedback.prediction_id, score, True
                    )
                else:
                    # No consent now means consent withdrawn: nothing of it may stay.
                    await connection.execute(
                        "DELETE FROM feedback WHERE prediction_id = $1", feedback.prediction_id
                    )
                    await connection.execute(
                        _SET_MONITORING_FEEDBACK, feedback.prediction_id, None, False
                    )
                return FeedbackOutcome(stored=feedback.rgpd_consent, previous=previous)

        return await self._until_present(attempt)

    async def erase(self, prediction_id: uuid.UUID) -> bool:
        """Delete the prediction (its photo and feedback cascade) and leave a tombstone; False
        when nothing was stored under the id yet.

        The tombstone is written either way, in the same transaction: inference may still hold
        the prediction in memory (PostgreSQL unreachable from it, not from us) and write it
        later, and the tombstone's triggers then refuse it. There is therefore nothing to wait
        for.
        """
        async with self._connection() as connection, connection.transaction():
            status = await connection.execute("DELETE FROM monitoring WHERE id = $1", prediction_id)
            await connection.execute(_TOMBSTONE, prediction_id)
        return status != "DELETE 0"

    async def export(self, prediction_id: uuid.UUID) -> asyncpg.Record:
        """Everything stored about one prediction, photo bytes included."""

        async def attempt() -> asyncpg.Record:
            async with self._connection() as connection:
                row = await connection.fetchrow(_EXPORT_PREDICTION, prediction_id)
            if row is None:
                raise _Missing
            return row

        return await self._until_present(attempt)

    async def export_feedback_page(
        self, after: uuid.UUID | None, limit: int
    ) -> list[dict[str, Any]]:
        """One page of stored feedback in id order (keyset pagination), without photos."""
        async with self._connection() as connection:
            rows = await connection.fetch(_EXPORT_FEEDBACK_PAGE, after, limit)
        return [dict(row) for row in rows]

    async def live_accuracy(self, window_s: float) -> tuple[int, float | None]:
        """Predictions with feedback updated in the window, and their share satisfied."""
        async with self._connection() as connection:
            row = await connection.fetchrow(_LIVE_ACCURACY, window_s)
        assert row is not None
        return int(row["predictions"]), row["ratio"]


async def purge_tombstones(connection: asyncpg.Connection, cutoff: datetime) -> int:
    """Forget erasure tombstones older than `cutoff`; returns how many."""
    status = await connection.execute("DELETE FROM erased_predictions WHERE erased_at < $1", cutoff)
    return int(status.split()[-1])


async def purge_older_than(
    connection: asyncpg.Connection, cutoff: datetime, *, batch_size: int
) -> int:
    """Delete predictions created before `cutoff`, in short batches; returns how many."""
    total = 0
    while True:
        deleted = await connection.fetchval(
            """
            WITH doomed AS (
                SELECT id FROM monitoring WHERE created_at < $1 ORDER BY created_at LIMIT $2
            ), gone AS (
                DELETE FROM monitoring WHERE id IN (SELECT id FROM doomed) RETURNING 1
            )
            SELECT count(*) FROM gone
            """,
            cutoff,
            batch_size,
        )
        total += int(deleted)
        if deleted < batch_size:
            return total
