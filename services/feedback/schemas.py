"""Request and response bodies of the feedback API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

Label = Literal["cat", "dog"]
Satisfaction = Literal["satisfied", "unsatisfied"]


class FeedbackIn(BaseModel):
    """`POST /feedback`: a user's verdict on one prediction."""

    model_config = ConfigDict(extra="forbid")

    prediction_id: uuid.UUID
    satisfaction: Satisfaction
    rgpd_consent: StrictBool = Field(
        description="Keep this feedback linked to the prediction. Required, never assumed."
    )
    true_label: Label | None = Field(
        default=None, description="What the photo really shows, when the user says so."
    )


class FeedbackOut(BaseModel):
    """The answer to `POST /feedback`."""

    prediction_id: uuid.UUID
    satisfaction: Satisfaction
    stored: bool = Field(description="True when kept (consent given); false: counted only.")


class FeedbackRecord(BaseModel):
    """Stored feedback, as exported."""

    satisfaction: Satisfaction
    true_label: Label | None
    consent_at: datetime
    created_at: datetime
    updated_at: datetime
    revision: int


class PhotoRecord(BaseModel):
    """A photo kept with the consent to improve the model."""

    created_at: datetime
    content_type: str
    size_bytes: int
    image_base64: str


class EmbeddingRecord(BaseModel):
    """The model's features of the photo, kept for drift monitoring: numbers, not the photo."""

    created_at: datetime
    model_version: str
    values: list[float] = Field(description="The pooled features, as stored (float16).")


class PredictionExport(BaseModel):
    """`GET /predictions/{id}`: everything stored about one prediction (right of access)."""

    prediction_id: uuid.UUID
    created_at: datetime
    prediction: Label
    proba_cat: float
    proba_dog: float
    confidence: float
    pet_score: float | None
    inference_time_ms: float
    model_version: str
    rgpd_consent: bool
    user_feedback: int | None
    feedback: FeedbackRecord | None
    photo: PhotoRecord | None
    embedding: EmbeddingRecord | None = None
    erased_automatically_after: datetime = Field(
        description="When retention deletes all of it, unless erased earlier."
    )


class AdminFeedbackPage(BaseModel):
    """`GET /admin/feedback`: one page of stored feedback."""

    records: list[dict[str, object]]
    next_after: uuid.UUID | None = Field(description="Pass as `after` for the next page.")


class PurgeOut(BaseModel):
    """`POST /admin/retention/purge`."""

    purged: int
    cutoff: datetime
    skipped: bool


class ErasurePending(BaseModel):
    """Nothing is stored under the id yet; whatever arrives under it will be refused."""

    detail: str
