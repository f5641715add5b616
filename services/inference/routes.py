"""HTTP routes of the inference service."""

from __future__ import annotations

import asyncio
import html
import logging
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException

from services.common.errors import ErrorBody
from services.inference import metrics
from services.inference.canary import CallCounts
from services.inference.images import ImageRejected, ImageTooLarge, UnsupportedImage
from services.inference.lineup import Lineup, LineupManager
from services.inference.predictor import Prediction, Predictor
from services.inference.settings import Settings
from services.inference.shadow import ShadowScorer, ShadowWork
from services.inference.store import PredictionRow, PredictionWriter

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
_TRUE = {"true", "1", "on", "yes"}
_FALSE = {"false", "0", "off", "no", ""}
_MIME_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")


def get_lineup(request: Request) -> LineupManager:
    """The line-up manager built in the lifespan."""
    manager: LineupManager = request.app.state.lineup
    return manager


def get_writer(request: Request) -> PredictionWriter:
    """The background prediction writer."""
    writer: PredictionWriter = request.app.state.writer
    return writer


def get_settings(request: Request) -> Settings:
    """This app's settings."""
    settings: Settings = request.app.state.settings
    return settings


LineupDep = Annotated[LineupManager, Depends(get_lineup)]
WriterDep = Annotated[PredictionWriter, Depends(get_writer)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


class PredictionResponse(BaseModel):
    """The answer to `POST /predict`."""

    prediction_id: uuid.UUID
    prediction: Literal["cat", "dog"]
    proba_cat: float = Field(ge=0, le=1)
    proba_dog: float = Field(ge=0, le=1)
    confidence: float = Field(ge=0, le=1)
    inference_time_ms: float = Field(ge=0)
    model_version: str
    pet_score: float | None = Field(
        description="ImageNet probability mass on cats and dogs; low means neither."
    )
    is_cat_or_dog: bool = Field(description="False when the photo looks like neither.")


class BatchPredictionResponse(BaseModel):
    """The answer to `POST /predict` with several photos, in the order they were sent."""

    predictions: list[PredictionResponse]


class Photo(BaseModel):
    """One uploaded file."""

    data: bytes
    content_type: str


class Upload(BaseModel):
    """The fields of the multipart form."""

    photos: list[Photo]
    rgpd_consent: bool
    photo_consent: bool


_PREDICT_FORM: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "The photo; repeat the field to send several.",
                        },
                        "rgpd_consent": {"type": "boolean", "default": False},
                        "photo_consent": {
                            "type": "boolean",
                            "default": False,
                            "description": "Keep the photo to improve the model.",
                        },
                    },
                }
            }
        },
    }
}

router = APIRouter()


def _form_bool(value: object, name: str) -> bool:
    if value is None:
        return False
    text = value.strip().lower() if isinstance(value, str) else None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise HTTPException(422, f"{name} must be true or false")


def media_type(declared: str | None) -> str:
    """The part's declared type when it is a plain MIME type, else a neutral one.

    It is stored with consented photos: a client-written header must not be able to carry
    characters PostgreSQL refuses (a NUL fails the row, losing an answered prediction).
    """
    essence = (declared or "").partition(";")[0].strip().lower()
    if len(essence) <= 100 and _MIME_TYPE.fullmatch(essence):
        return essence
    return "application/octet-stream"


async def read_upload(request: Request, max_photos: int) -> Upload:
    """Parse the multipart form ourselves so that every malformed body is a clear 422."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise HTTPException(422, "send multipart/form-data with the photo in a 'file' field")
    try:
        form = await request.form(max_files=max_photos, max_fields=16)
    except StarletteHTTPException as error:
        # Starlette reports parser errors (too many files among them) as a bare 400.
        raise HTTPException(422, f"malformed multipart form: {error.detail}") from None
    except (MultiPartException, ValueError, KeyError) as error:
        raise HTTPException(422, f"malformed multipart form: {error}") from None
    files = [item for item in form.getlist("file") if isinstance(item, UploadFile)]
    if not files:
        raise HTTPException(422, "missing 'file' field with the photo")
    photos = [
        Photo(data=await upload.read(), content_type=media_type(upload.content_type))
        for upload in files
    ]
    await form.close()
    return Upload(
        photos=photos,
        rgpd_consent=_form_bool(form.get("rgpd_consent"), "rgpd_consent"),
        photo_consent=_form_bool(form.get("photo_consent"), "photo_consent"),
    )


def _rejection_status(error: ImageRejected) -> int:
    if isinstance(error, ImageTooLarge):
        return 413
    if isinstance(error, UnsupportedImage):
        return 415
    return 400


@router.post(
    "/predict",
    response_model=PredictionResponse | BatchPredictionResponse,
    openapi_extra=_PREDICT_FORM,
    responses={code: {"model": ErrorBody} for code in (400, 408, 413, 415, 422)},
)
async def predict(
    request: Request, lineup: LineupDep, writer: WriterDep, settings: SettingsDep
) -> PredictionResponse | BatchPredictionResponse:
    """Classify one photo as cat or dog, or several (repeat `file`) as one model batch."""
    upload = await read_upload(request, settings.predict_max_photos)
    for photo in upload.photos:
        if len(photo.data) > settings.max_upload_bytes:
            metrics.REJECTED.labels(reason="UploadTooLarge").inc()
            raise HTTPException(413, f"a file exceeds {settings.max_upload_bytes} bytes")
    answered = await answer(request, [photo.data for photo in upload.photos])
    responses = []
    keep_photo = upload.photo_consent
    for photo, (prediction_id, result) in zip(upload.photos, answered, strict=True):
        response = PredictionResponse(
            prediction_id=prediction_id,
            prediction=result.label,  # type: ignore[arg-type]
            proba_cat=result.probabilities["cat"],
            proba_dog=result.probabilities["dog"],
            confidence=result.confidence,
            inference_time_ms=result.seconds * 1000.0,
            model_version=result.model_version,
            pet_score=result.pet_score,
            is_cat_or_dog=result.is_cat_or_dog,
        )
        writer.submit(
            PredictionRow(
                id=prediction_id,
                created_at=datetime.now(UTC),
                prediction_result=response.prediction,
                proba_cat=response.proba_cat,
                proba_dog=response.proba_dog,
                confidence=response.confidence,
                pet_score=response.pet_score,
                inference_time_ms=response.inference_time_ms,
                model_version=response.model_version,
                rgpd_consent=upload.rgpd_consent,
                photo=photo.data if keep_photo else None,
                photo_content_type=photo.content_type if keep_photo else None,
            )
        )
        responses.append(response)
    shadow_behind(request, lineup.lineup, upload.photos, answered)
    if len(responses) == 1:
        return responses[0]
    return BatchPredictionResponse(predictions=responses)


async def answer(request: Request, photos: list[bytes]) -> list[tuple[uuid.UUID, Prediction]]:
    """Score photos with the line-up, one model batch per model that answers; each answer
    counted. Shared by `/predict` and the Open Inference Protocol's `/infer`.

    A photo goes to the canary or the active model by its new prediction id. A canary that
    fails is counted against its error budget and the active model answers instead.
    """
    lineup: Lineup = get_lineup(request).lineup
    calls: CallCounts = request.app.state.calls
    ids = [uuid.uuid4() for _ in photos]
    groups: dict[str, tuple[Predictor, list[int]]] = {}
    for index, prediction_id in enumerate(ids):
        predictor, _ = lineup.choose(prediction_id)
        groups.setdefault(predictor.version, (predictor, []))[1].append(index)
    results: dict[int, Prediction] = {}
    for predictor, indexes in groups.values():
        batch = [photos[index] for index in indexes]
        try:
            scored = await _run(request, predictor, batch)
        except HTTPException:
            raise  # the photo is refused whichever model looks at it
        except Exception:
            if predictor is lineup.active:
                raise
            calls.record(predictor.version, failed=True)
            logger.exception("canary model failed", extra={"version": predictor.version})
            scored = await _run(request, lineup.active, batch)
        else:
            for _ in indexes:
                calls.record(predictor.version, failed=False)
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


async def _run(request: Request, predictor: Predictor, photos: list[bytes]) -> list[Prediction]:
    try:
        return await asyncio.get_running_loop().run_in_executor(
            request.app.state.executor, predictor.predict_many, photos
        )
    except ImageRejected as error:
        metrics.REJECTED.labels(reason=type(error).__name__).inc()
        raise HTTPException(_rejection_status(error), str(error)) from None


def shadow_behind(
    request: Request,
    lineup: Lineup,
    photos: list[Photo],
    answered: list[tuple[uuid.UUID, Prediction]],
) -> None:
    """Queue the answered photos for the shadow model, if there is one."""
    if lineup.shadow is None:
        return
    scorer: ShadowScorer = request.app.state.shadow
    for photo, (prediction_id, result) in zip(photos, answered, strict=True):
        if result.model_version != lineup.shadow.version:
            scorer.submit(ShadowWork(prediction_id, photo.data, result.label, lineup.shadow))


@router.get("/model")
async def model(lineup: LineupDep) -> dict[str, Any]:
    """Which model answers, with its card's essentials, and the whole line-up."""
    current = lineup.lineup
    return {
        **current.active.classifier.describe(),
        "lineup": {role: predictor.version for role, predictor in current.roles().items()},
        "canary_share": current.canary_share if current.canary else None,
    }


@router.get("/", include_in_schema=False)
async def upload_page(settings: SettingsDep) -> HTMLResponse:
    """The upload page, told where the feedback service is."""
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    feedback_url = html.escape(settings.feedback_public_url, quote=True)
    return HTMLResponse(page.replace("{{FEEDBACK_PUBLIC_URL}}", feedback_url))


@router.get("/monitoring", include_in_schema=False)
async def monitoring(settings: SettingsDep) -> RedirectResponse:
    """Send people to the dashboard."""
    return RedirectResponse(settings.dashboard_public_url, status_code=307)
