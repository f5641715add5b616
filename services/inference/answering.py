"""Answering photos with the model line-up, and keeping what was answered: shared by
`POST /predict` and the Open Inference Protocol's `/infer`, so both count, store and shadow
every prediction the same way.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import numpy as np
from fastapi import HTTPException, Request

from catdog.images import ImageRejected, ImageTooLarge, UnsupportedImage, decoded_pixels
from services.common.ratelimit import RateLimiter
from services.inference import metrics
from services.inference import photos as kept_photos
from services.inference.canary import CallCounts
from services.inference.lineup import Lineup, LineupManager
from services.inference.predictor import Prediction, Predictor
from services.inference.shadow import ShadowScorer, ShadowWork
from services.inference.writer import PredictionRow, PredictionWriter

logger = logging.getLogger(__name__)

Answered = list[tuple[uuid.UUID, Prediction]]


@dataclass(frozen=True)
class Photo:
    """One uploaded photo."""

    data: bytes


def rejection_status(error: ImageRejected) -> int:
    """The HTTP status of a refused photo."""
    if isinstance(error, ImageTooLarge):
        return 413
    if isinstance(error, UnsupportedImage):
        return 415
    return 400


async def answer(
    request: Request, photos: list[bytes], *, predictor: Predictor | None = None
) -> Answered:
    """Score photos, one model batch per model that answers; each answer counted.

    Without `predictor`, a photo goes to the canary or the active model by its new prediction
    id, and a canary that fails is counted against its error budget while the active model
    answers instead. A bad photo raises `HTTPException` (counted in `cv_images_rejected_total`).
    """
    manager: LineupManager = request.app.state.lineup
    lineup: Lineup = manager.lineup
    calls: CallCounts = request.app.state.calls
    spend_decode_budget(request, photos, lineup.active)
    ids = [uuid.uuid4() for _ in photos]
    groups: dict[str, tuple[Predictor, list[int]]] = {}
    for index, prediction_id in enumerate(ids):
        chosen = predictor or lineup.choose(prediction_id)[0]
        groups.setdefault(chosen.version, (chosen, []))[1].append(index)
    results: dict[int, Prediction] = {}
    for chosen, indexes in groups.values():
        batch = [photos[index] for index in indexes]
        try:
            scored = await _run(request, chosen, batch)
        except HTTPException:
            raise  # the photo is refused whichever model looks at it
        except Exception:
            if chosen is lineup.active or predictor is not None:
                raise
            calls.record(chosen.version, failed=True)
            logger.exception("canary model failed", extra={"version": chosen.version})
            scored = await _run(request, lineup.active, batch)
        else:
            for _ in indexes:
                calls.record(chosen.version, failed=False)
        results.update(zip(indexes, scored, strict=True))
    answered = [(prediction_id, results[index]) for index, prediction_id in enumerate(ids)]
    for _, result in answered:
        version = result.model_version
        metrics.PREDICTIONS.labels(result=result.label, model_version=version).inc()
        metrics.INFERENCE_TIME.labels(model_version=version).observe(result.seconds)
        metrics.CONFIDENCE.labels(model_version=version).observe(result.confidence)
        if not result.is_cat_or_dog:
            metrics.NOT_A_PET.labels(model_version=version).inc()
    return answered


def spend_decode_budget(request: Request, photos: list[bytes], predictor: Predictor) -> None:
    """Charge the client the megapixels its photos will decode, or refuse them (429).

    Decoding costs CPU by the pixel, not by the byte: a 30 KB GIF may declare 40 megapixels.
    Each client's share refills at `DECODE_MEGAPIXELS_PER_CLIENT_PER_MINUTE`; read from the
    headers alone, so refusing costs next to nothing.
    """
    budget: RateLimiter = request.app.state.decode_budget
    spec = predictor.classifier.card.preprocessing
    megapixels = sum(decoded_pixels(data, spec, predictor.limits) for data in photos) / 1e6
    client = request.client.host if request.client else "unknown"
    wait_s = budget.acquire(client, megapixels)
    if wait_s:
        metrics.REJECTED.labels(reason="DecodeBudget").inc()
        raise HTTPException(
            429,
            f"these photos would decode {megapixels:.0f} megapixels, over this client's share: "
            f"retry in {wait_s} s",
            headers={"Retry-After": str(wait_s)},
        )


async def _run(request: Request, predictor: Predictor, photos: list[bytes]) -> list[Prediction]:
    try:
        return await asyncio.get_running_loop().run_in_executor(
            request.app.state.executor, predictor.predict_many, photos
        )
    except ImageRejected as error:
        metrics.REJECTED.labels(reason=type(error).__name__).inc()
        raise HTTPException(rejection_status(error), str(error)) from None


NotKeptReason = Literal["hourly_quota", "unreadable"]


@dataclass(frozen=True)
class Kept:
    """What is kept of one photo: its re-encoded bytes, or None and why not."""

    data: bytes | None
    # "hourly_quota" past KEPT_PHOTOS_PER_CLIENT_PER_HOUR, "unreadable" when only the model's
    # reduced decoding could read it; None when kept.
    not_kept_reason: NotKeptReason | None = None


async def keepable(request: Request, photos: list[Photo]) -> list[Kept]:
    """What may be kept of each photo: re-encoded without metadata (`photos.keepable`); nothing
    for one that only the model's reduced decoding could read, and past the client's share
    (`KEPT_PHOTOS_PER_CLIENT_PER_HOUR`), both counted. The prediction is answered either way."""
    limits = request.app.state.lineup.lineup.active.limits
    max_side: int = request.app.state.settings.kept_photo_max_side
    quota: RateLimiter = request.app.state.photo_quota
    client = request.client.host if request.client else "unknown"
    allowed = [quota.acquire(client) == 0 for _ in photos]

    def reencode() -> list[Kept]:
        kept: list[Kept] = []
        for photo, within_share in zip(photos, allowed, strict=True):
            if not within_share:
                metrics.DROPPED.labels(kind="photo_quota").inc()
                kept.append(Kept(None, "hourly_quota"))
                continue
            try:
                kept.append(Kept(kept_photos.keepable(photo.data, limits, max_side=max_side)))
            except ImageRejected:
                metrics.DROPPED.labels(kind="photo").inc()
                kept.append(Kept(None, "unreadable"))
        return kept

    return await asyncio.get_running_loop().run_in_executor(request.app.state.executor, reencode)


def drift_sample(embedding: np.ndarray | None, share: float) -> bytes | None:
    """The embedding as stored (float16, little-endian) when the sample draws it, else None."""
    if embedding is None or share <= 0 or (share < 1 and random.random() >= share):  # noqa: S311
        return None
    return embedding.astype("<f2").tobytes()


def record(
    request: Request,
    photos: list[Photo],
    answered: Answered,
    *,
    rgpd_consent: bool,
    kept: list[Kept] | None = None,
) -> None:
    """Queue every answered prediction for PostgreSQL (with what `keepable` made of its photo
    when the user allowed keeping it, with its embedding when the drift sample draws it) and
    for the shadow model, if there is one."""
    writer: PredictionWriter = request.app.state.writer
    share: float = request.app.state.settings.drift_sample_share
    keeping = [item.data for item in kept] if kept is not None else [None] * len(photos)
    for kept_photo, (prediction_id, result) in zip(keeping, answered, strict=True):
        writer.submit(
            PredictionRow(
                id=prediction_id,
                created_at=datetime.now(UTC),
                prediction_result=result.label,
                proba_cat=result.probabilities["cat"],
                proba_dog=result.probabilities["dog"],
                confidence=result.confidence,
                pet_score=result.pet_score,
                inference_time_ms=result.seconds * 1000.0,
                model_version=result.model_version,
                rgpd_consent=rgpd_consent,
                photo=kept_photo,
                photo_content_type=kept_photos.CONTENT_TYPE if kept_photo is not None else None,
                embedding=drift_sample(result.embedding, share),
            )
        )
    manager: LineupManager = request.app.state.lineup
    shadow = manager.lineup.shadow
    if shadow is None:
        return
    scorer: ShadowScorer = request.app.state.shadow
    for photo, (prediction_id, result) in zip(photos, answered, strict=True):
        if result.model_version != shadow.version:
            scorer.submit(ShadowWork(prediction_id, photo.data, result.label, shadow))
