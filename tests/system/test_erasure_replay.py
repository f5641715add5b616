"""Erasure against inference's writer: a batch sent again after an erasure stays erased.

Inference retries a batch whose commit it could not confirm; if the owner erased the
prediction in between, the retry must not bring it back (the tombstones of migration 0101).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import psycopg
import pytest
from fastapi.testclient import TestClient

from services.common.db import Database
from services.feedback import retention
from services.feedback.app import create_app
from services.feedback.settings import Settings
from services.inference.settings import Settings as InferenceSettings
from services.inference.writer import PredictionRow, PredictionWriter
from tests.support.images import jpeg
from tests.support.postgres import tables_holding
from tests.support.running import run_async


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    """The feedback service on the test's database."""
    settings = Settings(
        database_url=database_url,
        db_probe_interval_s=0.2,
        feedback_admin_token="an-admin-token-for-tests-7f3a",
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_an_erased_prediction_written_again_by_inference_stays_erased(
    client: TestClient, database_url: str, db: psycopg.Connection
) -> None:
    row = PredictionRow(
        id=uuid.uuid4(),
        created_at=datetime.now(UTC),
        prediction_result="cat",
        proba_cat=0.9,
        proba_dog=0.1,
        confidence=0.9,
        pet_score=0.99,
        inference_time_ms=5.0,
        model_version="test-1",
        rgpd_consent=True,
        photo=jpeg(),
        photo_content_type="image/jpeg",
        embedding=np.ones(1280, dtype="<f2").tobytes(),
    )
    run_async(write_like_inference(database_url, row))
    assert db.execute("SELECT count(*) FROM prediction_embeddings").fetchone() == (1,)
    assert client.delete(f"/predictions/{row.id}").status_code == 204

    # A batch whose commit inference could not confirm is sent again, after the erasure.
    run_async(write_like_inference(database_url, row))

    assert tables_holding(db, row.id) == []
    assert db.execute("SELECT count(*) FROM prediction_photos").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM prediction_embeddings").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM erased_predictions").fetchone() == (1,)
    assert client.get(f"/predictions/{row.id}").status_code == 404


async def write_like_inference(database_url: str, row: PredictionRow) -> None:
    """Write a prediction through inference's own writer."""
    database = Database(database_url)
    await database.start()
    writer = PredictionWriter(database, max_rows=10, max_photo_bytes=10 * 1024 * 1024)
    writer.submit(replace(row))
    await writer.stop()
    await database.close()
    assert writer.pending == 0


def test_tombstones_outlive_any_prediction_inference_may_still_write() -> None:
    bound = next(
        rule.le
        for rule in InferenceSettings.model_fields["pending_max_age_s"].metadata
        if getattr(rule, "le", None) is not None
    )
    assert bound < retention.TOMBSTONE_DAYS * 86_400
