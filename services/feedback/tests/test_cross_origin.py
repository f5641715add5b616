"""How the upload page reaches this service: CORS (the page's side is in inference's tests)."""

from __future__ import annotations

from fastapi.testclient import TestClient

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
