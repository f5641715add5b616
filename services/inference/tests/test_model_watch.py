"""The model watch against a real PostgreSQL and the real model: embeddings stored with their
prediction and erased with it, one stored check per round whoever runs it, gauges from it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import numpy as np
import psycopg
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pydantic import ValidationError

from catdog.model import Classifier
from services.inference.app import create_app
from services.inference.model_watch import WatchPolicy, figures
from services.inference.settings import REPO_ROOT, Settings
from tests.support.images import encode

REAL_MODEL = REPO_ROOT / "models" / "cat_dog_classifier.onnx"
WINDOW = 20


def noise_photo(seed: int) -> bytes:
    """A photo of nothing: far from any training photo's embedding."""
    pixels = np.random.default_rng(seed).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    return encode(Image.fromarray(pixels), "JPEG", quality=90)


def watch_client(database_url: str, **overrides: object) -> TestClient:
    settings = Settings(
        database_url=database_url,
        model_path=REAL_MODEL,
        db_probe_interval_s=0.2,
        drift_window=WINDOW,
        drift_interval_s=3600,  # rounds are run by the test
        drift_permutations=200,
        drift_keep_windows=1,
        **overrides,
    )
    return TestClient(create_app(settings))


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    with watch_client(database_url) as test_client:
        yield test_client


def predict(client: TestClient, count: int, *, start: int = 0) -> list[str]:
    ids = []
    for seed in range(start, start + count):
        response = client.post(
            "/predict", files={"file": ("n.jpg", noise_photo(seed), "image/jpeg")}
        )
        assert response.status_code == 200, response.text
        ids.append(response.json()["prediction_id"])
    return ids


def wait_for_rows(db: psycopg.Connection, table: str, count: int) -> None:
    for _ in range(100):
        if db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"{table} never reached {count} rows")


def test_a_window_of_noise_is_drift_stored_published_and_erasable(
    client: TestClient, db: psycopg.Connection
) -> None:
    ids = predict(client, WINDOW + 5)
    wait_for_rows(db, "prediction_embeddings", WINDOW + 5)
    stored = db.execute("SELECT length(embedding) FROM prediction_embeddings LIMIT 1").fetchone()
    assert stored[0] == 1280 * 2  # float16 vector, no photo

    published = client.portal.call(client.app.state.watch.check)
    (row,) = published.values()
    assert row["model_version"] == "2.0.0" and row["window_size"] == WINDOW
    assert row["drift_p_value"] < 0.01 and row["drift_score"] > row["drift_threshold"]
    assert row["predictions"] == WINDOW and row["labelled"] == 0
    # Pruned to one window; the oldest embeddings went first.
    assert db.execute("SELECT count(*) FROM prediction_embeddings").fetchone()[0] == WINDOW
    kept = {str(r[0]) for r in db.execute("SELECT prediction_id FROM prediction_embeddings")}
    assert kept == set(ids[5:])

    text = client.get("/metrics").text
    assert 'cv_embedding_drift_p_value{model_version="2.0.0"}' in text
    assert 'cv_estimated_accuracy_ratio{model_version="2.0.0"}' in text

    db.execute("DELETE FROM monitoring WHERE id = %s", (ids[-1],))
    left = db.execute(
        "SELECT count(*) FROM prediction_embeddings WHERE prediction_id = %s", (ids[-1],)
    ).fetchone()
    assert left[0] == 0


def test_a_round_just_run_by_another_replica_is_not_run_again(
    client: TestClient, db: psycopg.Connection
) -> None:
    predict(client, WINDOW)
    wait_for_rows(db, "prediction_embeddings", WINDOW)
    watch = client.app.state.watch

    async def two_replicas() -> None:
        await asyncio.gather(watch.check(), watch.check())

    client.portal.call(two_replicas)
    client.portal.call(watch.check)
    assert db.execute("SELECT count(*) FROM drift_checks").fetchone()[0] == 1


def test_labelled_answers_give_feedback_accuracy_and_calibration(
    client: TestClient, db: psycopg.Connection
) -> None:
    ids = predict(client, 12)
    wait_for_rows(db, "monitoring", 12)
    answers = dict(db.execute("SELECT id::text, prediction_result FROM monitoring").fetchall())
    for index, prediction_id in enumerate(ids):
        verdict = "satisfied" if index < 9 else "unsatisfied"
        db.execute(
            "INSERT INTO feedback (prediction_id, satisfaction, consent_at) VALUES (%s, %s, now())",
            (prediction_id, verdict),
        )
    (row,) = client.portal.call(client.app.state.watch.check).values()
    assert row["labelled"] == 12
    assert row["feedback_accuracy"] == pytest.approx(9 / 12)
    assert 0.5 <= row["labelled_estimate"] <= 1.0 and row["labelled_stderr"] > 0
    assert 0 <= row["calibration_error"] <= 1
    curve = row["reliability"]
    curve = json.loads(curve) if isinstance(curve, str) else curve
    assert sum(curve["count"]) == 12 and len(curve["accuracy"]) == 15
    assert row["drift_p_value"] is None  # fewer than a window of embeddings: not tested
    assert set(answers) == set(ids)


def test_no_embedding_is_kept_when_the_sample_share_is_zero(
    database_url: str, db: psycopg.Connection
) -> None:
    with watch_client(database_url, drift_sample_share=0.0) as client:
        predict(client, 3)
        wait_for_rows(db, "monitoring", 3)
    assert db.execute("SELECT count(*) FROM prediction_embeddings").fetchone()[0] == 0


def test_a_model_without_a_reference_gets_estimates_but_no_drift_figure() -> None:
    classifier = Classifier(REAL_MODEL)
    embeddings = np.zeros((WINDOW, 1280), dtype=np.float32)
    row = figures(None, embeddings, np.full(WINDOW, 0.9), [], WatchPolicy(window=WINDOW), seed=0)
    assert row["drift_p_value"] is None and row["reference_size"] is None
    assert row["estimated_accuracy"] == pytest.approx(0.9)
    assert classifier.reference is not None and classifier.reference.shape == (1000, 1280)


def test_too_few_permutations_to_reach_the_level_are_refused_at_start(database_url: str) -> None:
    with pytest.raises(ValidationError, match="DRIFT_PERMUTATIONS=50 can never"):
        Settings(database_url=database_url, drift_permutations=50, drift_alpha=0.01)
