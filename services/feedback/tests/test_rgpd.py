"""The owner's rights (erasure, access) and the operator's (admin), each with its guard."""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from services.feedback.app import create_app
from services.feedback.settings import Settings
from services.feedback.tests.conftest import (
    ADMIN_TOKEN,
    InsertPrediction,
    feedback_body,
)
from tests.support.images import jpeg
from tests.support.postgres import rollup_mismatches, tables_holding


def rolled_counts(db: psycopg.Connection) -> tuple[int, ...]:
    """Predictions, consented and feedback counted in the dashboard's hourly and daily roll-ups."""
    found = db.execute(
        "SELECT (SELECT coalesce(sum(predictions), 0) FROM monitoring_hourly),"
        " (SELECT coalesce(sum(consented), 0) FROM monitoring_hourly),"
        " (SELECT coalesce(sum(feedback), 0) FROM monitoring_hourly),"
        " (SELECT coalesce(sum(predictions), 0) FROM monitoring_daily),"
        " (SELECT coalesce(sum(labelled), 0) FROM monitoring_daily)"
    ).fetchone()
    assert found is not None
    return tuple(int(value) for value in found)


def test_erasure_leaves_no_trace_of_the_prediction_in_any_table(
    client: TestClient, prediction: InsertPrediction, db: psycopg.Connection
) -> None:
    # Made hours ago, so that the dashboard's roll-ups count them.
    made = datetime.now(UTC) - timedelta(hours=3)
    prediction_id = prediction(rgpd_consent=True, photo=jpeg(), created_at=made)
    other = prediction(rgpd_consent=True, photo=jpeg(), created_at=made)
    db.execute("SELECT monitoring_rollup_advance(now(), 1000)")
    for one in (prediction_id, other):
        assert client.post("/feedback", json=feedback_body(one)).status_code == 201
    assert rolled_counts(db) == (2, 2, 2, 2, 2)
    assert set(tables_holding(db, prediction_id)) >= {
        "public.monitoring.id",
        "public.prediction_photos.prediction_id",
        "public.feedback.prediction_id",
    }

    response = client.delete(f"/predictions/{prediction_id}")

    assert response.status_code == 204
    assert response.content == b""
    assert tables_holding(db, prediction_id) == []
    assert "public.feedback.prediction_id" in tables_holding(db, other)
    # No aggregate counts it any more: every roll-up equals what the rows left give.
    assert rolled_counts(db) == (1, 1, 1, 1, 1)
    assert rollup_mismatches(db) == []
    assert client.delete(f"/predictions/{prediction_id}").status_code == 202
    assert client.get(f"/predictions/{prediction_id}").status_code == 404


def test_erasing_a_prediction_not_stored_yet_answers_202_and_refuses_it_on_arrival(
    client: TestClient, db: psycopg.Connection
) -> None:
    prediction_id = uuid.uuid4()
    response = client.delete(f"/predictions/{prediction_id}")
    assert response.status_code == 202
    assert "as soon as it arrives" in response.json()["detail"]

    # Inference writes it late, as it does after an outage.
    db.execute(
        "INSERT INTO monitoring (id, prediction_result, proba_cat, proba_dog, confidence, "
        "inference_time_ms, model_version, rgpd_consent) "
        "VALUES (%s, 'cat', 0.9, 0.1, 0.9, 5.0, 'test-1', true)",
        (prediction_id,),
    )
    db.execute(
        "INSERT INTO prediction_photos (prediction_id, content_type, image) "
        "VALUES (%s, 'image/jpeg', %s)",
        (prediction_id, jpeg()),
    )

    assert tables_holding(db, prediction_id) == []
    assert client.get(f"/predictions/{prediction_id}").status_code == 404


def test_access_exports_everything_stored_including_the_photo(
    client: TestClient, prediction: InsertPrediction
) -> None:
    photo = jpeg((10, 200, 30))
    prediction_id = prediction(result="cat", rgpd_consent=True, photo=photo)
    assert client.post("/feedback", json=feedback_body(prediction_id)).status_code == 201

    response = client.get(f"/predictions/{prediction_id}")

    assert response.status_code == 200
    record = response.json()
    assert record["prediction_id"] == str(prediction_id)
    assert record["prediction"] == "cat"
    assert record["user_feedback"] == 0
    assert record["feedback"]["satisfaction"] == "unsatisfied"
    assert record["feedback"]["true_label"] == "dog"
    assert record["feedback"]["consent_at"]
    assert base64.b64decode(record["photo"]["image_base64"]) == photo
    assert record["photo"]["size_bytes"] == len(photo)
    assert record["erased_automatically_after"] > record["created_at"]


def test_access_exports_the_embedding_kept_for_drift_and_erasure_removes_it(
    client: TestClient, prediction: InsertPrediction, db: psycopg.Connection
) -> None:
    prediction_id = prediction()
    vector = np.linspace(0, 4, 1280).astype("<f2")
    db.execute(
        "INSERT INTO prediction_embeddings (prediction_id, model_version, embedding) "
        "VALUES (%s, 'test-1', %s)",
        (prediction_id, vector.tobytes()),
    )
    record = client.get(f"/predictions/{prediction_id}").json()
    assert record["embedding"]["model_version"] == "test-1"
    assert record["embedding"]["values"] == pytest.approx(vector.astype(float).tolist())

    assert client.delete(f"/predictions/{prediction_id}").status_code == 204
    left = db.execute(
        "SELECT count(*) FROM prediction_embeddings WHERE prediction_id = %s", (prediction_id,)
    ).fetchone()
    assert left is not None and left[0] == 0


def test_access_without_feedback_or_photo_says_so(
    client: TestClient, prediction: InsertPrediction
) -> None:
    record = client.get(f"/predictions/{prediction()}").json()
    assert record["feedback"] is None
    assert record["photo"] is None
    assert record["embedding"] is None
    assert record["user_feedback"] is None


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_owner_routes_are_rate_limited_per_client_with_retry_after(
    feedback_settings: Settings, method: str
) -> None:
    settings = feedback_settings.model_copy(
        update={"rgpd_rate_limit_burst": 3, "rgpd_rate_limit_per_minute": 1, "prediction_wait_s": 0}
    )
    with TestClient(create_app(settings)) as client:
        statuses = [
            client.request(method, f"/predictions/{uuid.uuid4()}").status_code for _ in range(4)
        ]
        refused = client.request(method, f"/predictions/{uuid.uuid4()}")
    # An erasure of an id not stored (yet) is 202, a read 404: both spend the limit.
    missed = 404 if method == "GET" else 202
    assert statuses == [missed, missed, missed, 429]
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert "too many requests" in refused.json()["detail"]


def test_feedback_misses_spend_the_limit_but_hits_do_not(
    feedback_settings: Settings, prediction: InsertPrediction
) -> None:
    settings = feedback_settings.model_copy(
        update={"rgpd_rate_limit_burst": 2, "rgpd_rate_limit_per_minute": 1, "prediction_wait_s": 0}
    )
    known = prediction()
    with TestClient(create_app(settings)) as client:
        hits = [client.post("/feedback", json=feedback_body(known)).status_code for _ in range(5)]
        misses = [
            client.post("/feedback", json=feedback_body(uuid.uuid4())).status_code for _ in range(3)
        ]
        after = client.post("/feedback", json=feedback_body(known))
    assert hits == [201] * 5
    assert misses == [404, 404, 429]
    assert after.status_code == 429


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {ADMIN_TOKEN}"},
        {"Authorization": "Bearer "},
    ],
)
@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/admin/feedback"), ("POST", "/admin/retention/purge")]
)
def test_admin_routes_refuse_missing_or_wrong_tokens(
    client: TestClient, headers: dict[str, str], method: str, path: str
) -> None:
    response = client.request(method, path, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert ADMIN_TOKEN not in response.text


def test_admin_bulk_export_pages_through_stored_feedback(
    client: TestClient, prediction: InsertPrediction
) -> None:
    ids = [prediction() for _ in range(3)]
    for one in ids:
        assert client.post("/feedback", json=feedback_body(one)).status_code == 201
    anonymous = prediction()
    body = feedback_body(anonymous, rgpd_consent=False)
    assert client.post("/feedback", json=body).status_code == 201
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    first = client.get("/admin/feedback", params={"limit": 2}, headers=auth).json()
    second = client.get(
        "/admin/feedback", params={"limit": 2, "after": first["next_after"]}, headers=auth
    ).json()

    exported = [record["prediction_id"] for record in first["records"] + second["records"]]
    assert sorted(exported) == sorted(str(one) for one in ids)
    assert second["next_after"] is None


def test_admin_token_is_required_outside_dev_mode(database_url: str) -> None:
    with pytest.raises(ValidationError, match="FEEDBACK_ADMIN_TOKEN"):
        Settings(database_url=database_url, feedback_admin_token=None, dev_mode=False)
    with pytest.raises(ValidationError, match="FEEDBACK_ADMIN_TOKEN"):
        Settings(database_url=database_url, feedback_admin_token="changeme", dev_mode=False)


def test_dev_mode_without_a_token_keeps_admin_routes_closed(database_url: str) -> None:
    settings = Settings(database_url=database_url, feedback_admin_token=None, dev_mode=True)
    with TestClient(create_app(settings)) as client:
        for token in ("", "x"):
            response = client.get("/admin/feedback", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401


def test_feedback_keeps_only_a_keyed_digest_of_its_client_and_erasure_takes_it(
    client: TestClient, prediction: InsertPrediction, db: psycopg.Connection
) -> None:
    first, second, withdrawn = (prediction(rgpd_consent=True) for _ in range(3))
    for one in (first, second, withdrawn):
        assert client.post("/feedback", json=feedback_body(one)).status_code == 201
    keys = dict(db.execute("SELECT prediction_id, client_key FROM feedback").fetchall())
    # The same client, the same key; neither the address nor its plain digest.
    assert keys[first] == keys[second] == keys[withdrawn]
    assert len(keys[first]) == 32
    assert keys[first] != hashlib.sha256(b"testclient").digest()
    assert b"testclient" not in keys[first]
    withdrawal = {**feedback_body(withdrawn), "rgpd_consent": False}
    assert client.post("/feedback", json=withdrawal).status_code == 201
    assert client.delete(f"/predictions/{first}").status_code == 204
    remaining = db.execute("SELECT prediction_id FROM feedback WHERE client_key IS NOT NULL")
    assert [row[0] for row in remaining.fetchall()] == [second]
