"""How the upload page reaches this service: CORS here, CSP and the URL on the page there."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from services.inference.app import create_app as create_inference_app
from services.inference.settings import Settings as InferenceSettings

PAGE_ORIGIN = "http://localhost:8000"


def preflight(client: TestClient, origin: str, method: str) -> dict[str, str]:
    """Headers of a browser's CORS preflight for a JSON request."""
    response = client.options(
        "/feedback",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "content-type",
        },
    )
    return dict(response.headers)


def test_the_configured_page_origin_may_call_and_read_retry_after(client: TestClient) -> None:
    headers = preflight(client, PAGE_ORIGIN, "POST")
    assert headers["access-control-allow-origin"] == PAGE_ORIGIN
    response = client.get("/health", headers={"Origin": PAGE_ORIGIN})
    assert response.headers["access-control-allow-origin"] == PAGE_ORIGIN
    assert "retry-after" in response.headers["access-control-expose-headers"].lower()


def test_other_origins_are_not_allowed(client: TestClient) -> None:
    headers = preflight(client, "https://evil.example", "DELETE")
    assert "access-control-allow-origin" not in headers
    response = client.get("/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in response.headers


def test_the_upload_page_may_connect_only_to_itself_and_the_feedback_service(
    database_url: str, model_path: Path
) -> None:
    settings = InferenceSettings(
        database_url=database_url,
        model_path=model_path,
        feedback_public_url="https://feedback.example.org/",
    )
    with TestClient(create_inference_app(settings)) as client:
        page = client.get("/")
    assert (
        "connect-src 'self' https://feedback.example.org;"
        in page.headers["content-security-policy"]
    )
    assert '<meta name="feedback-url" content="https://feedback.example.org">' in page.text


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "https://x.example/\"><script>", "https://a.example; script-src *",
     "feedback.example.org"],
)  # fmt: skip
def test_the_feedback_url_must_be_a_plain_http_url(url: str) -> None:
    with pytest.raises(ValidationError, match="feedback_public_url"):
        InferenceSettings(feedback_public_url=url)
