"""How the upload page reaches the feedback service: its CSP and the URL it is given."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from services.inference.app import create_app
from services.inference.settings import Settings


def test_the_upload_page_may_connect_only_to_itself_and_the_feedback_service(
    database_url: str, model_path: Path
) -> None:
    settings = Settings(
        database_url=database_url,
        model_path=model_path,
        feedback_public_url="https://feedback.example.org/",
    )
    with TestClient(create_app(settings)) as client:
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
        Settings(feedback_public_url=url)
