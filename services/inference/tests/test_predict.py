"""The prediction contract, persistence and metrics."""

from __future__ import annotations

import io
import statistics
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from prometheus_client import REGISTRY

from harness.services import ServiceProcess
from harness.waiting import wait_until
from tests.support.images import jpeg, odd_images
from tests.support.tiny_model import build_tiny_model


def wait_for_rows(db: psycopg.Connection, expected: int) -> int:
    """Rows are written off the request path: poll until they land."""

    def count() -> int:
        return db.execute("SELECT count(*) FROM monitoring").fetchone()[0]

    wait_until(lambda: count() >= expected, timeout_s=10)
    return count()


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_prediction_follows_the_contract(client: TestClient) -> None:
    response = client.post("/predict", files={"file": ("cat.jpg", jpeg(), "image/jpeg")})
    assert response.status_code == 200, response.text
    body = response.json()
    uuid.UUID(body["prediction_id"])
    assert body["prediction"] in {"cat", "dog"}
    assert abs(body["proba_cat"] + body["proba_dog"] - 1) <= 1e-6
    assert body["confidence"] == max(body["proba_cat"], body["proba_dog"])
    assert body["inference_time_ms"] > 0
    assert body["model_version"]
    assert isinstance(body["is_cat_or_dog"], bool)


def test_every_prediction_is_written_with_its_consent(
    client: TestClient, db: psycopg.Connection
) -> None:
    ids = {}
    for consent in ("true", "false", None):
        data = {"rgpd_consent": consent} if consent else {}
        response = client.post(
            "/predict", files={"file": ("a.jpg", jpeg(), "image/jpeg")}, data=data
        )
        ids[response.json()["prediction_id"]] = consent == "true"

    assert wait_for_rows(db, 3) == 3
    rows = db.execute(
        "SELECT id::text, rgpd_consent, prediction_result, proba_cat, proba_dog, "
        "inference_time_ms, model_version, user_feedback FROM monitoring"
    ).fetchall()
    assert {row[0]: row[1] for row in rows} == ids
    for row in rows:
        assert row[2] in {"cat", "dog"} and abs(row[3] + row[4] - 1) < 1e-6
        assert row[5] > 0 and row[6] and row[7] is None


def test_photo_is_stored_only_with_its_own_consent(
    client: TestClient, db: psycopg.Connection
) -> None:
    photo = jpeg((10, 10, 220))
    kept = client.post(
        "/predict",
        files={"file": ("a.jpg", photo, "image/jpeg")},
        data={"rgpd_consent": "true", "photo_consent": "true"},
    ).json()["prediction_id"]
    client.post(
        "/predict", files={"file": ("b.jpg", photo, "image/jpeg")}, data={"rgpd_consent": "true"}
    )

    assert wait_for_rows(db, 2) == 2
    photos = db.execute("SELECT prediction_id::text, image FROM prediction_photos").fetchall()
    assert [prediction_id for prediction_id, _ in photos] == [kept]
    # The picture is kept, re-encoded; the uploaded bytes are not.
    stored = Image.open(io.BytesIO(photos[0][1]))
    assert (stored.format, stored.size) == ("JPEG", Image.open(io.BytesIO(photo)).size)


def test_metrics_count_predictions_by_class_and_version(client: TestClient) -> None:
    version = client.get("/model").json()["version"]
    before = {
        label: sample("cv_predictions_total", result=label, model_version=version)
        for label in ("cat", "dog")
    }
    seconds_before = sample("cv_inference_time_seconds_count", model_version=version)
    results = [
        client.post("/predict", files={"file": ("x.jpg", jpeg(color), "image/jpeg")}).json()
        for color in [(250, 0, 0), (0, 0, 250), (250, 0, 0)]
    ]
    assert {result["model_version"] for result in results} == {version}
    for label in ("cat", "dog"):
        expected = sum(result["prediction"] == label for result in results)
        counted = sample("cv_predictions_total", result=label, model_version=version)
        assert counted - before[label] == expected
    assert sample("cv_inference_time_seconds_count", model_version=version) - seconds_before == 3
    text = client.get("/metrics").text
    for name in (
        "cv_predictions_total",
        "cv_inference_time_seconds_bucket",
        "cv_model_confidence_bucket",
        "cv_database_connected",
        'cv_inference_stage_seconds_count{stage="decode"}',
        "http_requests_total",
    ):
        assert name in text


@pytest.mark.parametrize("name", sorted(odd_images()))
def test_odd_but_valid_images_are_classified(client: TestClient, name: str) -> None:
    data, mime = odd_images()[name]
    response = client.post("/predict", files={"file": (f"{name}.img", data, mime)})
    assert response.status_code == 200, response.text


def test_real_photos_are_classified_correctly(
    client: TestClient, dataset_dir: Path, model_path: Path
) -> None:
    if model_path.name != "cat_dog_classifier.onnx":
        pytest.skip("the committed model is not there yet: only the tiny test model")
    photos = (
        sorted((dataset_dir / "val" / "cat").glob("*.jpg"))[:5]
        + sorted((dataset_dir / "val" / "dog").glob("*.jpg"))[:5]
    )
    for photo in photos:
        response = client.post(
            "/predict", files={"file": (photo.name, photo.read_bytes(), "image/jpeg")}
        )
        assert response.status_code == 200
        assert response.json()["prediction"] == photo.parent.name, photo.name


@pytest.mark.slow
def test_a_photos_inference_time_is_its_own_whatever_the_batch_it_came_in(
    database_url: str, tmp_path: Path
) -> None:
    # The canary is judged on these times: were each photo of a batch charged the whole batch's
    # model time, sending big batches would make any version look slow.
    slow = build_tiny_model(tmp_path / "slow", per_photo_work=100)
    env = {"DATABASE_URL": database_url, "MODEL_PATH": str(slow), "PREDICT_MAX_PHOTOS": "16"}
    with ServiceProcess("inference", env, tmp_path) as service:

        def times(count: int) -> list[float]:
            files = [("file", (f"{i}.jpg", jpeg(), "image/jpeg")) for i in range(count)]
            response = httpx.post(f"{service.url}/predict", files=files, timeout=30)
            assert response.status_code == 200, response.text
            body = response.json()
            answers = body["predictions"] if count > 1 else [body]
            return [answer["inference_time_ms"] for answer in answers]

        alone = statistics.median(t for _ in range(9) for t in times(1))
        batched = statistics.median(t for _ in range(3) for t in times(16))
    # Charged the whole batch, a photo of 16 would take about 16 times as long.
    assert batched < 4 * alone, (batched, alone)
