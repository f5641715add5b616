"""HTTP routes of the inference service."""

from __future__ import annotations

import asyncio
import html
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from services.common.errors import ErrorBody
from services.inference import metrics
from services.inference.images import ImageRejected, ImageTooLarge, UnsupportedImage
from services.inference.predictor import Prediction, Predictor
from services.inference.settings import Settings
from services.inference.store import PredictionRow, PredictionWriter

STATIC_DIR = Path(__file__).with_name("static")
_TRUE = {"true", "1", "on", "yes"}
_FALSE = {"false", "0", "off", "no", ""}
_MIME_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")


def get_predictor(request: Request) -> Predictor:
    """The predictor built in the lifespan."""
    predictor: Predictor = request.app.state.predictor
    return predictor


def get_writer(request: Request) -> PredictionWriter:
    """The background prediction writer."""
    writer: PredictionWriter = request.app.state.writer
    return writer


def get_settings(request: Request) -> Settings:
    """This app's settings."""
    settings: Settings = request.app.state.settings
    return settings


PredictorDep = Annotated[Predictor, Depends(get_predictor)]
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


class Upload(BaseModel):
    """The fields of the multipart form."""

    data: bytes
    content_type: str
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
                        "file": {"type": "string", "format": "binary"},
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


async def read_upload(request: Request) -> Upload:
    """Parse the multipart form ourselves so that every malformed body is a clear 422."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise HTTPException(422, "send multipart/form-data with the photo in a 'file' field")
    try:
        form = await request.form(max_files=1, max_fields=16)
    except (MultiPartException, ValueError, KeyError) as error:
        raise HTTPException(422, f"malformed multipart form: {error}") from None
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise HTTPException(422, "missing 'file' field with the photo")
    data = await upload.read()
    await form.close()
    return Upload(
        data=data,
        content_type=media_type(upload.content_type),
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
    response_model=PredictionResponse,
    openapi_extra=_PREDICT_FORM,
    responses={code: {"model": ErrorBody} for code in (400, 408, 413, 415, 422)},
)
async def predict(
    request: Request, predictor: PredictorDep, writer: WriterDep, settings: SettingsDep
) -> PredictionResponse:
    """Classify one photo as cat or dog."""
    upload = await read_upload(request)
    if len(upload.data) > settings.max_upload_bytes:
        metrics.REJECTED.labels(reason="UploadTooLarge").inc()
        raise HTTPException(413, f"the file exceeds {settings.max_upload_bytes} bytes")
    executor = request.app.state.executor
    try:
        result: Prediction = await asyncio.get_running_loop().run_in_executor(
            executor, predictor.predict, upload.data
        )
    except ImageRejected as error:
        metrics.REJECTED.labels(reason=type(error).__name__).inc()
        raise HTTPException(_rejection_status(error), str(error)) from None

    response = PredictionResponse(
        prediction_id=uuid.uuid4(),
        prediction=result.label,  # type: ignore[arg-type]
        proba_cat=result.probabilities["cat"],
        proba_dog=result.probabilities["dog"],
        confidence=result.confidence,
        inference_time_ms=result.seconds * 1000.0,
        model_version=predictor.classifier.card.version,
        pet_score=result.pet_score,
        is_cat_or_dog=result.is_cat_or_dog,
    )
    metrics.PREDICTIONS.labels(result=response.prediction).inc()
    metrics.INFERENCE_TIME.observe(result.seconds)
    metrics.CONFIDENCE.observe(result.confidence)
    if not result.is_cat_or_dog:
        metrics.NOT_A_PET.inc()
    keep_photo = upload.photo_consent
    writer.submit(
        PredictionRow(
            id=response.prediction_id,
            created_at=datetime.now(UTC),
            prediction_result=response.prediction,
            proba_cat=response.proba_cat,
            proba_dog=response.proba_dog,
            confidence=response.confidence,
            pet_score=response.pet_score,
            inference_time_ms=response.inference_time_ms,
            model_version=response.model_version,
            rgpd_consent=upload.rgpd_consent,
            photo=upload.data if keep_photo else None,
            photo_content_type=upload.content_type if keep_photo else None,
        )
    )
    return response


@router.get("/model")
async def model(predictor: PredictorDep) -> dict[str, Any]:
    """Which model answers, with its card's essentials."""
    return predictor.classifier.describe()


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
