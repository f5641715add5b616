"""Fixtures for the dashboard's tests: an app on the test's database and a callback caller."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.dashboard.app import create_app
from services.dashboard.settings import Settings

USER, PASSWORD = "monitoring", "a-long-test-password"
RANGE_IDS = [
    ("range-preset", "value"),
    ("range-custom", "start_date"),
    ("range-custom", "end_date"),
    ("refresh", "n_intervals"),
]


@pytest.fixture
def dashboard_settings(database_url: str) -> Settings:
    """Settings on the test's own database, with a login."""
    return Settings(
        database_url=database_url,
        dashboard_user=USER,
        dashboard_password=PASSWORD,
        db_probe_interval_s=0.2,
        db_connect_timeout_s=1.0,
    )


@pytest.fixture
def client(dashboard_settings: Settings) -> Iterator[TestClient]:
    """The app with its lifespan running, logged in by default."""
    with TestClient(create_app(dashboard_settings)) as test_client:
        test_client.auth = (USER, PASSWORD)
        yield test_client


def call_callback(
    client: TestClient,
    outputs: list[tuple[str, str]],
    preset: str = "24h",
    start: str | None = None,
    end: str | None = None,
) -> dict[str, Any]:
    """POST one callback the way the page does; returns {component id: {property: value}}."""
    values = [preset, start, end, 0]
    body = {
        "output": (
            f"{outputs[0][0]}.{outputs[0][1]}"
            if len(outputs) == 1
            else ".." + "...".join(f"{i}.{p}" for i, p in outputs) + ".."
        ),
        "outputs": (
            {"id": outputs[0][0], "property": outputs[0][1]}
            if len(outputs) == 1
            else [{"id": i, "property": p} for i, p in outputs]
        ),
        "inputs": [
            {"id": i, "property": p, "value": v}
            for (i, p), v in zip(RANGE_IDS, values, strict=True)
        ],
        "changedPropIds": ["range-preset.value"],
    }
    response = client.post("/monitoring/_dash-update-component", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()["response"]
    return answer


def figure_text(figure: dict[str, Any]) -> str:
    """The annotations of a figure: placeholders explain themselves there."""
    return " ".join(a.get("text", "") for a in figure["layout"].get("annotations", []))
