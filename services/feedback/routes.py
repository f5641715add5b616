"""HTTP routes of the feedback service: feedback, the owner's rights, and admin operations."""

from __future__ import annotations

import base64
import struct
import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse

from services.common.auth import bearer_token_dependency
from services.common.errors import ErrorBody
from services.common.ratelimit import RateLimiter
from services.feedback import metrics, retention
from services.feedback.repository import Feedback, FeedbackRepository, PredictionNotFound
from services.feedback.schemas import (
    AdminFeedbackPage,
    EmbeddingRecord,
    ErasurePending,
    FeedbackIn,
    FeedbackOut,
    FeedbackRecord,
    PhotoRecord,
    PredictionExport,
    PurgeOut,
)
from services.feedback.settings import Settings


def get_repository(request: Request) -> FeedbackRepository:
    """The repository built in the lifespan."""
    repository: FeedbackRepository = request.app.state.repository
    return repository


def get_limiter(request: Request) -> RateLimiter:
    """The per-client limiter of the owner's routes."""
    limiter: RateLimiter = request.app.state.limiter
    return limiter


def get_app_settings(request: Request) -> Settings:
    """This app's settings."""
    settings: Settings = request.app.state.settings
    return settings


RepositoryDep = Annotated[FeedbackRepository, Depends(get_repository)]
LimiterDep = Annotated[RateLimiter, Depends(get_limiter)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (404, 422, 429, 503)
}


def client_key(request: Request) -> str:
    """Who a request counts against: the peer address."""
    return request.client.host if request.client else "unknown"


def _too_many(route: str, wait_s: int) -> HTTPException:
    metrics.RATE_LIMITED.labels(route=route).inc()
    return HTTPException(
        429, f"too many requests: retry in {wait_s} s", headers={"Retry-After": str(wait_s)}
    )


def _limit(limiter: RateLimiter, request: Request, route: str) -> None:
    wait_s = limiter.acquire(client_key(request))
    if wait_s:
        raise _too_many(route, wait_s)


router = APIRouter(tags=["feedback"])


@router.post("/feedback", status_code=201, response_model=FeedbackOut, responses=_ERRORS)
async def post_feedback(
    body: FeedbackIn,
    request: Request,
    repository: RepositoryDep,
    limiter: LimiterDep,
) -> FeedbackOut:
    """Record a verdict on a prediction; the latest one wins, kept only with consent."""
    # Feedback is the hot path, so only misses spend from the limiter: guessing ids does.
    wait_s = limiter.retry_after(client_key(request))
    if wait_s:
        raise _too_many("/feedback", wait_s)
    try:
        outcome = await repository.record_feedback(
            Feedback(
                prediction_id=body.prediction_id,
                satisfaction=body.satisfaction,
                rgpd_consent=body.rgpd_consent,
                true_label=body.true_label,
                client=client_key(request),
            )
        )
    except PredictionNotFound:
        limiter.acquire(client_key(request))
        raise
    metrics.FEEDBACK.labels(satisfaction=body.satisfaction).inc()
    metrics.CONSENT.labels(consent="given" if body.rgpd_consent else "refused").inc()
    if outcome.previous is not None:
        metrics.SUPERSEDED.labels(satisfaction=outcome.previous).inc()
    return FeedbackOut(
        prediction_id=body.prediction_id, satisfaction=body.satisfaction, stored=outcome.stored
    )


@router.get("/predictions/{prediction_id}", response_model=PredictionExport, responses=_ERRORS)
async def get_prediction(
    prediction_id: uuid.UUID,
    request: Request,
    response: Response,
    repository: RepositoryDep,
    limiter: LimiterDep,
    settings: SettingsDep,
) -> PredictionExport:
    """Everything stored about a prediction, photo included (RGPD right of access)."""
    # Personal data, the photo included: no browser or proxy cache may keep a copy.
    response.headers["Cache-Control"] = "no-store"
    _limit(limiter, request, "/predictions/{prediction_id}")
    row = await repository.export(prediction_id)
    metrics.ACCESS_REQUESTS.inc()
    feedback = (
        FeedbackRecord(
            satisfaction=row["satisfaction"],
            true_label=row["true_label"],
            consent_at=row["consent_at"],
            created_at=row["feedback_created_at"],
            updated_at=row["feedback_updated_at"],
            revision=row["revision"],
        )
        if row["satisfaction"] is not None
        else None
    )
    photo = (
        PhotoRecord(
            created_at=row["photo_created_at"],
            content_type=row["photo_content_type"],
            size_bytes=len(row["photo"]),
            image_base64=base64.b64encode(row["photo"]).decode(),
        )
        if row["photo"] is not None
        else None
    )
    embedding = (
        EmbeddingRecord(
            created_at=row["embedding_created_at"],
            model_version=row["embedding_model_version"],
            # Little-endian float16, as inference stores them (`e` is struct's half float).
            values=list(struct.unpack(f"<{len(row['embedding']) // 2}e", row["embedding"])),
        )
        if row["embedding"] is not None
        else None
    )
    return PredictionExport(
        prediction_id=row["prediction_id"],
        created_at=row["created_at"],
        prediction=row["prediction"],
        proba_cat=row["proba_cat"],
        proba_dog=row["proba_dog"],
        confidence=row["confidence"],
        pet_score=row["pet_score"],
        inference_time_ms=row["inference_time_ms"],
        model_version=row["model_version"],
        rgpd_consent=row["rgpd_consent"],
        user_feedback=row["user_feedback"],
        feedback=feedback,
        photo=photo,
        embedding=embedding,
        erased_automatically_after=row["created_at"] + timedelta(days=settings.retention_days),
    )


ERASURE_PENDING = (
    "nothing is stored under this id yet: it is erased as soon as it arrives, and never kept"
)


@router.delete(
    "/predictions/{prediction_id}",
    status_code=204,
    response_class=Response,
    responses={
        **_ERRORS,
        202: {"model": ErasurePending, "description": "Erased as soon as it arrives."},
    },
)
async def delete_prediction(
    prediction_id: uuid.UUID,
    request: Request,
    repository: RepositoryDep,
    limiter: LimiterDep,
) -> Response:
    """Erase a prediction with its photo and feedback (RGPD right to erasure): 204 when it was
    stored, 202 when it is not yet (inference may still hold it) and will be refused on arrival."""
    _limit(limiter, request, "/predictions/{prediction_id}")
    erased = await repository.erase(prediction_id)
    metrics.ERASURES.inc()
    if erased:
        return Response(status_code=204)
    return JSONResponse({"detail": ERASURE_PENDING}, status_code=202)


def admin_router(token: str | None) -> APIRouter:
    """Operator endpoints, each behind the bearer token."""
    admin = APIRouter(
        prefix="/admin",
        tags=["admin"],
        dependencies=[Depends(bearer_token_dependency(token))],
        responses={code: {"model": ErrorBody} for code in (401, 429, 503)},
    )

    @admin.get("/feedback", response_model=AdminFeedbackPage)
    async def export_feedback(
        repository: RepositoryDep,
        after: Annotated[uuid.UUID | None, Query(description="Last id of the page before.")] = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    ) -> AdminFeedbackPage:
        """Bulk export of the stored (consented) feedback, in pages."""
        records = await repository.export_feedback_page(after, limit)
        next_after = records[-1]["prediction_id"] if len(records) == limit else None
        return AdminFeedbackPage(records=records, next_after=next_after)

    @admin.post("/retention/purge", response_model=PurgeOut)
    async def purge_now(request: Request, settings: SettingsDep) -> PurgeOut:
        """Run the retention purge now."""
        result = await retention.purge_with_pool(
            request.app.state.database,
            days=settings.retention_days,
            batch_size=settings.retention_batch_size,
        )
        return PurgeOut(purged=result.purged, cutoff=result.cutoff, skipped=result.skipped)

    return admin
