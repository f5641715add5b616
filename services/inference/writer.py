"""Writes predictions to PostgreSQL off the request path, and keeps them while it is down."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from services.common.db import CONNECTION_ERRORS, Database
from services.inference import metrics

logger = logging.getLogger(__name__)

_INSERT_PREDICTIONS = """
INSERT INTO monitoring (id, created_at, prediction_result, proba_cat, proba_dog, confidence,
                        pet_score, inference_time_ms, model_version, rgpd_consent)
SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::float8[], $5::float8[],
                     $6::float8[], $7::float8[], $8::float8[], $9::text[], $10::bool[])
ON CONFLICT (id) DO NOTHING
"""
_INSERT_PHOTOS = """
INSERT INTO prediction_photos (prediction_id, created_at, content_type, image)
SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::bytea[])
ON CONFLICT (prediction_id) DO NOTHING
"""
_INSERT_EMBEDDINGS = """
INSERT INTO prediction_embeddings (prediction_id, model_version, created_at, embedding)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::bytea[])
ON CONFLICT (prediction_id) DO NOTHING
"""
_INSERT_SHADOW = """
INSERT INTO shadow_predictions (prediction_id, model_version, created_at, prediction_result,
                                proba_cat, confidence, inference_time_ms)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::text[], $5::float8[],
                     $6::float8[], $7::float8[])
ON CONFLICT (prediction_id, model_version) DO NOTHING
"""


@dataclass
class PredictionRow:
    """One prediction as stored; `photo` only with the consent to keep it."""

    id: uuid.UUID
    created_at: datetime
    prediction_result: str
    proba_cat: float
    proba_dog: float
    confidence: float
    pet_score: float | None
    inference_time_ms: float
    model_version: str
    rgpd_consent: bool
    photo: bytes | None = None
    photo_content_type: str | None = None
    # float16 bytes of the embedding, for the rows the drift sample keeps.
    embedding: bytes | None = None


@dataclass
class ShadowRow:
    """A shadow model's answer to a prediction the active model gave; never shown."""

    prediction_id: uuid.UUID
    model_version: str
    created_at: datetime
    prediction_result: str
    proba_cat: float
    confidence: float
    inference_time_ms: float


Row = PredictionRow | ShadowRow


class PredictionWriter:
    """A bounded in-memory queue drained in batches by one background task.

    Shadow rows share the queue, behind the prediction they belong to, so that the
    prediction is always written first. Rows are written idempotently (ON CONFLICT DO
    NOTHING), so a batch whose outcome is unknown after a dropped connection is simply
    written again. Past `max_rows`, the oldest rows are
    dropped and counted: the service must keep answering however long PostgreSQL is away.
    Rows older than `max_age_s` are dropped and counted too: an erasure leaves a tombstone
    that refuses a late write only for as long as it is kept (`retention.TOMBSTONE_DAYS`).
    """

    def __init__(
        self,
        database: Database,
        *,
        max_rows: int,
        max_photo_bytes: int,
        max_age_s: float = 86_400.0,
        batch_size: int = 500,
        retry_delay_s: float = 1.0,
    ) -> None:
        self._database = database
        self._rows: collections.deque[Row] = collections.deque()
        self._max_rows = max_rows
        self._max_photo_bytes = max_photo_bytes
        self._max_age = timedelta(seconds=max_age_s)
        self._photo_bytes = 0
        self._batch_size = batch_size
        self._retry_delay_s = retry_delay_s
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """Rows not yet written."""
        return len(self._rows)

    def submit(self, row: PredictionRow) -> None:
        """Queue a row without waiting; never raises."""
        if row.photo is not None:
            if self._photo_bytes + len(row.photo) > self._max_photo_bytes:
                metrics.DROPPED.labels(kind="photo").inc()
                row.photo = None
            else:
                self._photo_bytes += len(row.photo)
        self._append(row)

    def submit_shadow(self, row: ShadowRow) -> None:
        """Queue a shadow's answer without waiting; never raises."""
        self._append(row)

    def _append(self, row: Row) -> None:
        self._rows.append(row)
        while len(self._rows) > self._max_rows:
            dropped = self._rows.popleft()
            self._forget(dropped)
            kind = "prediction" if isinstance(dropped, PredictionRow) else "shadow"
            metrics.DROPPED.labels(kind=kind).inc()
        metrics.PENDING.set(len(self._rows))
        self._wakeup.set()

    def start(self) -> None:
        """Start draining in the background."""
        self._task = asyncio.create_task(self._drain_forever(), name="prediction-writer")

    async def stop(self, flush_timeout_s: float = 5.0) -> None:
        """Stop draining after one last attempt to write what is queued."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._flush(), flush_timeout_s)
        if self._rows:
            logger.error("predictions not written at shutdown", extra={"rows": len(self._rows)})

    async def _flush(self) -> None:
        while self._rows and await self._write_one_batch():
            pass

    async def _drain_forever(self) -> None:
        while True:
            if not self._rows:
                self._wakeup.clear()
                await self._wakeup.wait()
            if not await self._write_one_batch():
                # Sleep until the probe sees the database again, or retry after a pause.
                await self._database.wait_for_change(self._retry_delay_s)

    def _drop_expired(self) -> None:
        cutoff = datetime.now(UTC) - self._max_age
        while self._rows and self._rows[0].created_at < cutoff:
            self._forget(self._rows.popleft())
            metrics.DROPPED.labels(kind="expired").inc()
        metrics.PENDING.set(len(self._rows))

    async def _write_one_batch(self) -> bool:
        self._drop_expired()
        if not self._rows:
            return True
        batch = [self._rows[i] for i in range(min(self._batch_size, len(self._rows)))]
        try:
            await self._insert(batch)
        except CONNECTION_ERRORS as error:
            metrics.WRITE_FAILURES.inc()
            self._database.mark(False, reason=repr(error))
            return False
        except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError):
            # A row PostgreSQL will never accept must not block the queue behind it forever.
            metrics.WRITE_FAILURES.inc()
            logger.exception("prediction batch rejected; writing rows one by one")
            batch = await self._insert_each(batch)
        except asyncpg.PostgresError as error:
            # e.g. the schema is not migrated yet: keep the rows and retry later.
            metrics.WRITE_FAILURES.inc()
            logger.error("prediction batch not written", extra={"error": repr(error)})
            return False
        for _ in batch:
            self._forget(self._rows.popleft())
        metrics.WRITES.inc(len(batch))
        metrics.PENDING.set(len(self._rows))
        self._database.mark(True)
        return True

    async def _insert_each(self, batch: list[Row]) -> list[Row]:
        """Write rows singly; the ones refused for their content are dropped and counted."""
        for row in batch:
            try:
                await self._insert([row])
            except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError):
                metrics.DROPPED.labels(kind="invalid").inc()
                prediction_id = row.id if isinstance(row, PredictionRow) else row.prediction_id
                logger.exception(
                    "prediction row dropped", extra={"prediction_id": str(prediction_id)}
                )
        return batch

    def _forget(self, row: Row) -> None:
        if isinstance(row, PredictionRow) and row.photo is not None:
            self._photo_bytes -= len(row.photo)

    async def _insert(self, batch: list[Row]) -> None:
        predictions = [row for row in batch if isinstance(row, PredictionRow)]
        shadows = [row for row in batch if isinstance(row, ShadowRow)]
        photos = [row for row in predictions if row.photo is not None]
        embedded = [row for row in predictions if row.embedding is not None]
        async with self._database.pool.acquire() as connection, connection.transaction():
            if predictions:
                await connection.execute(
                    _INSERT_PREDICTIONS,
                    [row.id for row in predictions],
                    [row.created_at for row in predictions],
                    [row.prediction_result for row in predictions],
                    [row.proba_cat for row in predictions],
                    [row.proba_dog for row in predictions],
                    [row.confidence for row in predictions],
                    [row.pet_score for row in predictions],
                    [row.inference_time_ms for row in predictions],
                    [row.model_version for row in predictions],
                    [row.rgpd_consent for row in predictions],
                )
            if photos:
                await connection.execute(
                    _INSERT_PHOTOS,
                    [row.id for row in photos],
                    [row.created_at for row in photos],
                    [row.photo_content_type for row in photos],
                    [row.photo for row in photos],
                )
            if embedded:
                await connection.execute(
                    _INSERT_EMBEDDINGS,
                    [row.id for row in embedded],
                    [row.model_version for row in embedded],
                    [row.created_at for row in embedded],
                    [row.embedding for row in embedded],
                )
            if shadows:
                await connection.execute(
                    _INSERT_SHADOW,
                    [row.prediction_id for row in shadows],
                    [row.model_version for row in shadows],
                    [row.created_at for row in shadows],
                    [row.prediction_result for row in shadows],
                    [row.proba_cat for row in shadows],
                    [row.confidence for row in shadows],
                    [row.inference_time_ms for row in shadows],
                )
