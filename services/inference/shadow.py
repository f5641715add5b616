"""The shadow model scores what the active model answered, off the request's critical path.

A bounded queue between the request and one background worker: when the shadow falls behind,
new photos are dropped and counted, never waited for. The shadow runs in its own thread so
that it never takes a request's thread. Its answers are written apart (`shadow_predictions`)
and never shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from catdog.images import ImageRejected
from services.inference import metrics
from services.inference.predictor import Predictor
from services.inference.writer import PredictionWriter, ShadowRow

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShadowWork:
    """One answered photo for the shadow to score."""

    prediction_id: uuid.UUID
    photo: bytes
    answered_label: str
    shadow: Predictor


class ShadowScorer:
    """One worker draining a bounded queue into the shadow model."""

    def __init__(self, writer: PredictionWriter, *, queue_limit: int) -> None:
        self._writer = writer
        self._queue: asyncio.Queue[ShadowWork] = asyncio.Queue(maxsize=queue_limit)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="shadow")
        self._task: asyncio.Task[None] | None = None

    def submit(self, work: ShadowWork) -> None:
        """Queue a photo without waiting; a full queue drops it (counted)."""
        try:
            self._queue.put_nowait(work)
        except asyncio.QueueFull:
            metrics.SHADOW_DROPPED.labels(model_version=work.shadow.version).inc()
            return
        metrics.SHADOW_QUEUE.set(self._queue.qsize())

    def start(self) -> None:
        """Start the worker."""
        self._task = asyncio.create_task(self._work_forever(), name="shadow-scorer")

    async def stop(self) -> None:
        """Stop the worker; photos still queued are dropped (the shadow is best effort)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def _work_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            work = await self._queue.get()
            try:
                answer = await loop.run_in_executor(self._executor, work.shadow.predict, work.photo)
            except ImageRejected:
                pass  # the active model answered it, so this shadow decodes differently: skip
            except Exception:  # a broken candidate must never take the worker down
                metrics.MODEL_ERRORS.labels(model_version=work.shadow.version).inc()
                logger.exception("shadow model failed", extra={"version": work.shadow.version})
            else:
                agreement = "agree" if answer.label == work.answered_label else "disagree"
                metrics.SHADOW_RESULTS.labels(
                    model_version=answer.model_version, agreement=agreement
                ).inc()
                self._writer.submit_shadow(
                    ShadowRow(
                        prediction_id=work.prediction_id,
                        model_version=answer.model_version,
                        created_at=datetime.now(UTC),
                        prediction_result=answer.label,
                        proba_cat=answer.probabilities["cat"],
                        confidence=answer.confidence,
                        inference_time_ms=answer.seconds * 1000.0,
                    )
                )
            finally:
                self._queue.task_done()
                metrics.SHADOW_QUEUE.set(self._queue.qsize())
