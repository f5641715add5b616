"""Health, readiness, metrics switch, model card, redirect and the upload page."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from services.inference.app import create_app
from services.inference.settings import Settings
from tests.support.images import jpeg


def test_health_and_ready(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "model": "ok", "database": "ok"}


def test_ready_reports_database_down_but_stays_ready(model_path: Path) -> None:
    settings = Settings(
        database_url="postgresql://postgres@127.0.0.1:1/nowhere",
        model_path=model_path,
        db_connect_timeout_s=0.5,
    )
    with TestClient(create_app(settings)) as client:
        ready = client.get("/ready")
        assert ready.status_code == 200
        assert ready.json()["database"] == "down"
        assert ready.json()["status"] == "degraded"
        assert "cv_database_connected 0.0" in client.get("/metrics").text


def test_metrics_can_be_switched_off(inference_settings: Settings) -> None:
    settings = inference_settings.model_copy(update={"enable_prometheus": False})
    with TestClient(create_app(settings)) as client:
        assert client.get("/metrics").status_code == 404


def test_model_card_is_served(client: TestClient, model_path: Path) -> None:
    body = client.get("/model").json()
    assert body["labels"] == ["cat", "dog"]
    assert len(body["sha256"]) == 64
    assert body["input_size"][0] == 3
    assert body["name"] and body["version"]


def test_monitoring_redirects_to_the_dashboard(client: TestClient) -> None:
    response = client.get("/monitoring", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"].endswith("/monitoring/")


def test_upload_page_has_consent_unticked_and_security_headers(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert 'id="rgpd-consent" name="rgpd_consent" type="checkbox">' in page.text
    assert "checked" not in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    assert client.get("/static/app.js").status_code == 200


def test_missing_database_degrades_instead_of_failing_start(
    model_path: Path, pg_admin_url: str
) -> None:
    from services.common.migrate import with_database

    settings = Settings(
        database_url=with_database(pg_admin_url, "cv_database_that_does_not_exist"),
        model_path=model_path,
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/ready").json()["database"] == "down"
        assert (
            client.post("/predict", files={"file": ("a.jpg", jpeg(), "image/jpeg")}).status_code
            == 200
        )


def test_http_metrics_count_requests_in_every_app_of_a_process(
    inference_settings: Settings,
) -> None:
    from prometheus_client import REGISTRY

    def predict_requests() -> float:
        labels = {"handler": "/predict", "method": "POST", "status": "2xx"}
        return REGISTRY.get_sample_value("http_requests_total", labels) or 0.0

    for _ in range(2):  # the second app must count too
        before = predict_requests()
        with TestClient(create_app(inference_settings)) as client:
            client.post("/predict", files={"file": ("a.jpg", jpeg(), "image/jpeg")})
        assert predict_requests() - before == 1
