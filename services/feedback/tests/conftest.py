"""Fixtures for the feedback service's tests."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from fastapi.testclient import TestClient

from services.feedback.app import create_app
from services.feedback.settings import Settings

ADMIN_TOKEN = "test-admin-token-5f0c9d1e"

InsertPrediction = Callable[..., uuid.UUID]


@pytest.fixture
def feedback_settings(database_url: str) -> Settings:
    """Settings pointing at the test's own database, with short waits."""
    return Settings(
        database_url=database_url,
        feedback_admin_token=ADMIN_TOKEN,
        db_probe_interval_s=0.2,
        prediction_wait_s=0.3,
    )


@pytest.fixture
def client(feedback_settings: Settings) -> Iterator[TestClient]:
    """The app with its lifespan running."""
    with TestClient(create_app(feedback_settings)) as test_client:
        yield test_client


def insert_prediction(
    db: psycopg.Connection,
    *,
    created_at: datetime | None = None,
    result: str = "cat",
    rgpd_consent: bool = False,
    photo: bytes | None = None,
) -> uuid.UUID:
    """A prediction row as inference writes it, with its photo when given."""
    prediction_id = uuid.uuid4()
    created = created_at or datetime.now(UTC)
    proba_cat = 0.9 if result == "cat" else 0.1
    db.execute(
        """
        INSERT INTO monitoring (id, created_at, prediction_result, proba_cat, proba_dog,
                                confidence, inference_time_ms, model_version, rgpd_consent)
        VALUES (%s, %s, %s, %s, %s, 0.9, 5.0, 'test-1', %s)
        """,
        (prediction_id, created, result, proba_cat, 1 - proba_cat, rgpd_consent),
    )
    if photo is not None:
        db.execute(
            "INSERT INTO prediction_photos (prediction_id, created_at, content_type, image) "
            "VALUES (%s, %s, 'image/jpeg', %s)",
            (prediction_id, created, photo),
        )
    return prediction_id


@pytest.fixture
def prediction(db: psycopg.Connection) -> InsertPrediction:
    """Insert a prediction into the test's database."""

    def insert(**kwargs: object) -> uuid.UUID:
        return insert_prediction(db, **kwargs)  # type: ignore[arg-type]

    return insert


def feedback_body(prediction_id: uuid.UUID, **overrides: object) -> dict[str, object]:
    """A valid `POST /feedback` body."""
    return {
        "prediction_id": str(prediction_id),
        "satisfaction": "unsatisfied",
        "rgpd_consent": True,
        "true_label": "dog",
        **overrides,
    }
