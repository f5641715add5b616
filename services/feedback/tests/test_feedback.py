"""POST /feedback: consent decides what is kept, the latest verdict wins, errors are clear."""

from __future__ import annotations

import threading
import time
import uuid

import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from services.feedback.app import create_app
from services.feedback.settings import Settings
from services.feedback.tests.conftest import (
    ADMIN_TOKEN,
    InsertPrediction,
    feedback_body,
    insert_prediction,
)


def sample(name: str, **labels: str) -> float:
    """Current value of a sample, 0 when it was never set."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_feedback_with_consent_is_stored_with_its_consent_time(
    client: TestClient, prediction: InsertPrediction, db: psycopg.Connection
) -> None:
    prediction_id = prediction(result="cat")
    before = sample("cv_user_feedback_total", satisfaction="unsatisfied")

    response = client.post("/feedback", json=feedback_body(prediction_id))

    assert response.status_code == 201
    assert response.json() == {
        "prediction_id": str(prediction_id),
        "satisfaction": "unsatisfied",
        "stored": True,
    }
    row = db.execute(
        "SELECT f.satisfaction, f.true_label, f.consent_at IS NOT NULL, f.revision, "
        "m.user_feedback, m.rgpd_consent "
        "FROM feedback f JOIN monitoring m ON m.id = f.prediction_id WHERE m.id = %s",
        (prediction_id,),
    ).fetchone()
    assert row == ("unsatisfied", "dog", True, 1, 0, True)
    assert sample("cv_user_feedback_total", satisfaction="unsatisfied") == before + 1


def test_feedback_without_consent_only_counts_in_metrics(
    client: TestClient, prediction: InsertPrediction, db: psycopg.Connection
) -> None:
    prediction_id = prediction()
    before = sample("cv_user_feedback_total", satisfaction="satisfied")

    response = client.post(
        "/feedback",
        json=feedback_body(
            prediction_id, satisfaction="satisfied", rgpd_consent=False, true_label=None
        ),
    )

    assert response.status_code == 201
    assert response.json()["stored"] is False
    assert db.execute("SELECT count(*) FROM feedback").fetchone() == (0,)
    assert db.execute(
        "SELECT user_feedback, rgpd_consent FROM monitoring WHERE id = %s", (prediction_id,)
    ).fetchone() == (None, False)
    assert sample("cv_user_feedback_total", satisfaction="satisfied") == before + 1


def test_a_later_feedback_replaces_the_earlier_one(
    client: TestClient, prediction: InsertPrediction, db: psycopg.Connection
) -> None:
    prediction_id = prediction(result="cat")
    superseded_before = sample("cv_user_feedback_superseded_total", satisfaction="satisfied")

    first = feedback_body(prediction_id, satisfaction="satisfied", true_label=None)
    assert client.post("/feedback", json=first).status_code == 201
    assert client.post("/feedback", json=feedback_body(prediction_id)).status_code == 201

    rows = db.execute(
        "SELECT satisfaction, true_label, revision FROM feedback WHERE prediction_id = %s",
        (prediction_id,),
    ).fetchall()
    assert rows == [("unsatisfied", "dog", 2)]
    assert db.execute(
        "SELECT user_feedback FROM monitoring WHERE id = %s", (prediction_id,)
    ).fetchone() == (0,)
    superseded = sample("cv_user_feedback_superseded_total", satisfaction="satisfied")
    assert superseded == superseded_before + 1


def test_live_accuracy_counts_each_prediction_once_with_its_latest_verdict(
    feedback_settings: Settings, db: psycopg.Connection
) -> None:
    changed_mind = insert_prediction(db)
    happy = insert_prediction(db)
    settings = feedback_settings.model_copy(update={"accuracy_refresh_s": 0.1})
    with TestClient(create_app(settings)) as client:
        for body in (
            feedback_body(changed_mind, satisfaction="satisfied", true_label=None),
            feedback_body(changed_mind, satisfaction="unsatisfied"),
            feedback_body(happy, satisfaction="satisfied", true_label=None),
        ):
            assert client.post("/feedback", json=body).status_code == 201
        deadline = time.monotonic() + 10
        while sample("cv_feedback_accuracy_predictions") != 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sample("cv_feedback_accuracy_predictions") == 2
        assert sample("cv_feedback_accuracy_ratio") == pytest.approx(0.5)


def test_feedback_without_consent_withdraws_an_earlier_consent(
    client: TestClient, prediction: InsertPrediction, db: psycopg.Connection
) -> None:
    prediction_id = prediction(rgpd_consent=True)
    assert client.post("/feedback", json=feedback_body(prediction_id)).status_code == 201

    withdrawn = feedback_body(prediction_id, rgpd_consent=False, true_label=None)
    response = client.post("/feedback", json=withdrawn)

    assert response.status_code == 201
    assert db.execute("SELECT count(*) FROM feedback").fetchone() == (0,)
    assert db.execute(
        "SELECT user_feedback, rgpd_consent FROM monitoring WHERE id = %s", (prediction_id,)
    ).fetchone() == (None, False)


def test_unknown_prediction_is_404(client: TestClient) -> None:
    before = sample("cv_user_feedback_total", satisfaction="unsatisfied")
    response = client.post("/feedback", json=feedback_body(uuid.uuid4()))
    assert response.status_code == 404
    assert "no prediction has this id" in response.json()["detail"]
    assert sample("cv_user_feedback_total", satisfaction="unsatisfied") == before


def test_feedback_waits_for_a_prediction_still_being_written(
    feedback_settings: Settings, db: psycopg.Connection, database_url: str
) -> None:
    settings = feedback_settings.model_copy(update={"prediction_wait_s": 30.0})
    prediction_id = uuid.uuid4()
    waits_before = sample("cv_feedback_prediction_waits_total")

    def write_once_the_request_waits() -> None:
        deadline = time.monotonic() + 30
        while sample("cv_feedback_prediction_waits_total") == waits_before:
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)
        # The request looked, found nothing and is waiting: now inference's row lands.
        insert_prediction_with_id(database_url, prediction_id)

    writer = threading.Thread(target=write_once_the_request_waits)
    writer.start()
    with TestClient(create_app(settings)) as client:
        response = client.post("/feedback", json=feedback_body(prediction_id))
    writer.join()
    assert response.status_code == 201
    assert sample("cv_feedback_prediction_waits_total") == waits_before + 1
    assert db.execute("SELECT count(*) FROM feedback").fetchone() == (1,)


def insert_prediction_with_id(database_url: str, prediction_id: uuid.UUID) -> None:
    """Write a prediction row with a chosen id, from another connection."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO monitoring (id, prediction_result, proba_cat, proba_dog, confidence, "
            "inference_time_ms, model_version) VALUES (%s, 'cat', 0.9, 0.1, 0.9, 5, 't')",
            (prediction_id,),
        )


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        ({"satisfaction": "satisfied", "rgpd_consent": True}, "prediction_id"),
        ({"prediction_id": "not-a-uuid", "satisfaction": "satisfied", "rgpd_consent": True},
         "prediction_id"),
        ({"prediction_id": str(uuid.uuid4()), "satisfaction": "meh", "rgpd_consent": True},
         "satisfaction"),
        ({"prediction_id": str(uuid.uuid4()), "satisfaction": "satisfied"}, "rgpd_consent"),
        ({"prediction_id": str(uuid.uuid4()), "satisfaction": "satisfied", "rgpd_consent": "yes"},
         "rgpd_consent"),
        ({"prediction_id": str(uuid.uuid4()), "satisfaction": "satisfied", "rgpd_consent": 1},
         "rgpd_consent"),
        ({"prediction_id": str(uuid.uuid4()), "satisfaction": "unsatisfied",
          "rgpd_consent": True, "true_label": "hamster"}, "true_label"),
        ({"prediction_id": str(uuid.uuid4()), "satisfaction": "satisfied",
          "rgpd_consent": True, "extra": 1}, "extra"),
        ([], "body"),
    ],
)  # fmt: skip
def test_malformed_bodies_are_422_saying_which_field(
    client: TestClient, body: object, mentions: str
) -> None:
    response = client.post("/feedback", json=body)
    assert response.status_code == 422
    assert mentions in response.json()["detail"] or mentions == "body"
    assert response.json()["detail"]


@pytest.mark.parametrize(
    ("content", "content_type"),
    [(b"{not json", "application/json"), (b"", "application/json"), (b"a=b", "text/plain")],
)
def test_unparseable_bodies_are_422(client: TestClient, content: bytes, content_type: str) -> None:
    response = client.post("/feedback", content=content, headers={"content-type": content_type})
    assert response.status_code == 422
    assert response.json()["detail"]


def test_database_down_is_a_retryable_503_and_not_counted(database_url: str) -> None:
    settings = Settings(
        database_url="postgresql://postgres@127.0.0.1:1/nowhere",
        feedback_admin_token=ADMIN_TOKEN,
        db_connect_timeout_s=0.3,
        retry_after_s=7,
    )
    before = sample("cv_user_feedback_total", satisfaction="unsatisfied")
    with TestClient(create_app(settings)) as client:
        response = client.post("/feedback", json=feedback_body(uuid.uuid4()))
        ready = client.get("/ready")
        metrics_text = client.get("/metrics").text
    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"
    assert "retry" in response.json()["detail"]
    assert sample("cv_user_feedback_total", satisfaction="unsatisfied") == before
    assert ready.status_code == 503
    assert ready.json()["database"] == "down"
    assert "cv_database_connected 0.0" in metrics_text


def test_metrics_expose_the_contract_series_without_ids(
    client: TestClient, prediction: InsertPrediction
) -> None:
    prediction_id = prediction()
    assert client.post("/feedback", json=feedback_body(prediction_id)).status_code == 201
    text = client.get("/metrics").text
    assert 'cv_user_feedback_total{satisfaction="satisfied"}' in text
    assert 'cv_user_feedback_total{satisfaction="unsatisfied"}' in text
    assert "cv_database_connected 1.0" in text
    assert str(prediction_id) not in text


@pytest.mark.parametrize(
    ("satisfaction", "true_label", "status"),
    [
        ("satisfied", "dog", 422),
        ("unsatisfied", "cat", 422),
        ("satisfied", "cat", 201),
        ("unsatisfied", "dog", 201),
    ],
)
def test_a_true_label_must_agree_with_the_verdict(
    client: TestClient,
    prediction: InsertPrediction,
    db: psycopg.Connection,
    satisfaction: str,
    true_label: str,
    status: int,
) -> None:
    prediction_id = prediction(result="cat")
    before = sample("cv_user_feedback_total", satisfaction=satisfaction)
    body = feedback_body(prediction_id, satisfaction=satisfaction, true_label=true_label)

    response = client.post("/feedback", json=body)

    assert response.status_code == status
    stored = db.execute("SELECT count(*) FROM feedback").fetchone()
    if status == 422:
        assert "true_label" in response.json()["detail"]
        assert stored == (0,)
        assert sample("cv_user_feedback_total", satisfaction=satisfaction) == before
    else:
        assert stored == (1,)
