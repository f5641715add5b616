"""HTTP routes of the inference service."""

from __future__ import annotations

import html
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException

from services.common.errors import ErrorBody
from services.common.i18n import LANGUAGES, choose_language
from services.common.sizes import readable_bytes
from services.inference import metrics
from services.inference.answering import Kept, NotKeptReason, Photo, answer, keepable, record
from services.inference.lineup import LineupManager
from services.inference.settings import Settings

STATIC_DIR = Path(__file__).with_name("static")
_TRUE = {"true", "1", "on", "yes"}
_FALSE = {"false", "0", "off", "no", ""}


def get_lineup(request: Request) -> LineupManager:
    """The line-up manager built in the lifespan."""
    manager: LineupManager = request.app.state.lineup
    return manager


def get_app_settings(request: Request) -> Settings:
    """This app's settings."""
    settings: Settings = request.app.state.settings
    return settings


LineupDep = Annotated[LineupManager, Depends(get_lineup)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]


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
    photo_kept: bool | None = Field(
        default=None, description="With photo_consent: whether the photo is kept; else null."
    )
    photo_not_kept_reason: NotKeptReason | None = Field(
        default=None,
        description="Why a photo the user allowed us to keep is not: past the client's"
        " KEPT_PHOTOS_PER_CLIENT_PER_HOUR, or readable only at the model's reduced scale.",
    )


class BatchPredictionResponse(BaseModel):
    """The answer to `POST /predict` with several photos, in the order they were sent."""

    predictions: list[PredictionResponse]


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
    photos = [Photo(data=await upload.read()) for upload in files]
    await form.close()
    return Upload(
        photos=photos,
        rgpd_consent=_form_bool(form.get("rgpd_consent"), "rgpd_consent"),
        photo_consent=_form_bool(form.get("photo_consent"), "photo_consent"),
    )


@router.post(
    "/predict",
    response_model=PredictionResponse | BatchPredictionResponse,
    openapi_extra=_PREDICT_FORM,
    responses={code: {"model": ErrorBody} for code in (400, 408, 413, 415, 422)},
)
async def predict(
    request: Request, settings: SettingsDep
) -> PredictionResponse | BatchPredictionResponse:
    """Classify one photo as cat or dog, or several (repeat `file`) as one model batch."""
    upload = await read_upload(request, settings.predict_max_photos)
    for photo in upload.photos:
        if len(photo.data) > settings.max_upload_bytes:
            metrics.REJECTED.labels(reason="UploadTooLarge").inc()
            raise HTTPException(413, f"a file exceeds {readable_bytes(settings.max_upload_bytes)}")
    answered = await answer(request, [photo.data for photo in upload.photos])
    kept = await keepable(request, upload.photos) if upload.photo_consent else None
    record(request, upload.photos, answered, rgpd_consent=upload.rgpd_consent, kept=kept)
    keeping: list[Kept | None] = list(kept) if kept is not None else [None] * len(answered)
    responses = [
        PredictionResponse(
            prediction_id=prediction_id,
            prediction=result.label,  # type: ignore[arg-type]
            proba_cat=result.probabilities["cat"],
            proba_dog=result.probabilities["dog"],
            confidence=result.confidence,
            inference_time_ms=result.seconds * 1000.0,
            model_version=result.model_version,
            pet_score=result.pet_score,
            is_cat_or_dog=result.is_cat_or_dog,
            photo_kept=None if kept_photo is None else kept_photo.data is not None,
            photo_not_kept_reason=None if kept_photo is None else kept_photo.not_kept_reason,
        )
        for (prediction_id, result), kept_photo in zip(answered, keeping, strict=True)
    ]
    if len(responses) == 1:
        return responses[0]
    return BatchPredictionResponse(predictions=responses)


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
async def upload_page(request: Request, settings: SettingsDep) -> HTMLResponse:
    """The upload page, told where the feedback service is and which language to start in."""
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    feedback_url = html.escape(settings.feedback_public_url, quote=True)
    language = choose_language(
        request.query_params.get("lang"), request.headers.get("accept-language")
    )
    page = page.replace("{{FEEDBACK_PUBLIC_URL}}", feedback_url).replace("{{LANG}}", language)
    # Caches must keep one copy per language the header can choose.
    return HTMLResponse(page, headers={"Vary": "Accept-Language", "Content-Language": language})


@router.get("/monitoring", include_in_schema=False)
async def monitoring(settings: SettingsDep, lang: str | None = None) -> RedirectResponse:
    """Send people to the dashboard, in the page's language when it names one."""
    target = settings.dashboard_public_url
    if lang in LANGUAGES:
        target += ("&" if "?" in target else "?") + f"lang={lang}"
    return RedirectResponse(target, status_code=307)
