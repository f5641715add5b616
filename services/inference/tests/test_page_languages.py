"""The upload page's catalogues, and the language the server starts the page in."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from services.common.i18n import LANGUAGES, load_catalogues
from services.inference.routes import STATIC_DIR

CATALOGUES = load_catalogues(STATIC_DIR / "i18n")
# Every status the contract says /predict and the feedback routes can answer the page with.
PREDICT_STATUSES = (400, 408, 413, 415, 422, 429, 431, 503)
FEEDBACK_STATUSES = (404, 422, 429, 503)


def keys_used_by_the_page() -> set[str]:
    """The catalogue keys named in the markup and, as string literals, in the scripts."""
    markup = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    script = (STATIC_DIR / "app.js").read_text(encoding="utf-8")
    named = set(re.findall(r'data-i18n(?:-aria-label)?="([^"]+)"', markup))
    literals = set(re.findall(r'"((?:page|upload|consent|result|feedback|rights|error)\.[\w.]+)"',
                              script))  # fmt: skip
    statuses = {f"error.predict.{status}" for status in PREDICT_STATUSES}
    statuses |= {f"error.feedback.{status}" for status in FEEDBACK_STATUSES}
    return named | literals | statuses


def test_both_languages_have_every_key_the_page_uses() -> None:
    used = keys_used_by_the_page()
    assert len(used) > 40
    for language in LANGUAGES:
        assert sorted(used - CATALOGUES[language].keys()) == [], language


def test_the_script_handles_every_status_it_has_words_for() -> None:
    script = (STATIC_DIR / "app.js").read_text(encoding="utf-8")
    for status in PREDICT_STATUSES:
        assert re.search(rf"const known = \[[^\]]*\b{status}\b", script), status
    for status in FEEDBACK_STATUSES:
        assert re.search(rf"\[[^\]]*\b{status}\b[^\]]*\]\.includes\(status\)", script), status


def test_the_french_catalogue_is_french() -> None:
    same = [key for key, text in CATALOGUES["en"].items() if CATALOGUES["fr"][key] == text]
    assert sorted(same) == ["footer.api", "result.milliseconds"]


@pytest.mark.parametrize(
    ("query", "header", "expected"),
    [
        ("", "fr-FR,fr;q=0.9,en;q=0.8", "fr"),
        ("", "en-GB,en;q=0.9", "en"),
        ("", "es-ES", "en"),
        ("", None, "en"),
        ("?lang=en", "fr-FR", "en"),
        ("?lang=fr", "en-US", "fr"),
        ("?lang=xx", "fr-FR", "fr"),
    ],
)
def test_page_starts_in_the_language_asked_for_or_the_browsers(
    client: TestClient, query: str, header: str | None, expected: str
) -> None:
    headers = {"Accept-Language": header} if header else {}
    response = client.get("/" + query, headers=headers)
    assert response.status_code == 200
    assert f'<html lang="{expected}"' in response.text
    assert response.headers["content-language"] == expected
    assert "accept-language" in response.headers["vary"].lower()


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalogues_are_served_beside_the_page(client: TestClient, language: str) -> None:
    response = client.get(f"/static/i18n/{language}.json")
    assert response.status_code == 200
    assert response.json() == CATALOGUES[language]


@pytest.mark.parametrize(
    ("query", "location"),
    [
        ("?lang=fr", "http://localhost:8050/monitoring/?lang=fr"),
        ("?lang=en", "http://localhost:8050/monitoring/?lang=en"),
        ("?lang=xx", "http://localhost:8050/monitoring/"),
        ("", "http://localhost:8050/monitoring/"),
    ],
)
def test_the_dashboard_link_carries_the_pages_language(
    client: TestClient, query: str, location: str
) -> None:
    response = client.get("/monitoring" + query, follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == location
