"""What the page says with an empty database, and with no database at all."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from services.dashboard.app import create_app
from services.dashboard.layout import VERSION_GRAPH
from services.dashboard.settings import Settings
from services.dashboard.tests.conftest import PASSWORD, USER, call_callback, figure_text

STATUS = [("status", "children"), ("status", "className"), ("kpis", "children")]
SERIES = [
    ("graph-traffic", "figure"),
    ("graph-versions", "figure"),
    ("graph-low-confidence", "figure"),
    ("graph-consent", "figure"),
]
VERSIONS = [("versions-table", "children"), (VERSION_GRAPH, "figure")]


def test_empty_database_says_so_in_words(client: TestClient) -> None:
    status = call_callback(client, STATUS)["status"]
    assert status["className"] == "status status-empty"
    assert "No predictions recorded yet" in status["children"]
    assert "services.dashboard.seed" in status["children"]
    for figure in call_callback(client, SERIES).values():
        assert "No predictions between" in figure_text(figure["figure"])
        assert figure["figure"]["data"] == []
    table = call_callback(client, [("latest-table", "children")])["latest-table"]["children"]
    assert "No predictions between" in table["props"]["children"]


def test_database_down_gives_a_clear_message_not_a_stack_trace(
    dashboard_settings: Settings,
) -> None:
    settings = dashboard_settings.model_copy(
        update={"database_url": "postgresql://postgres@127.0.0.1:1/nowhere"}
    )
    before = (
        REGISTRY.get_sample_value(
            "cv_dashboard_query_failures_total", {"query": "series", "reason": "unreachable"}
        )
        or 0
    )
    with TestClient(create_app(settings)) as client:
        client.auth = (USER, PASSWORD)
        page = client.get("/monitoring/")
        assert page.status_code == 200
        status = call_callback(client, STATUS)["status"]
        assert status["className"] == "status status-error"
        assert "PostgreSQL is unreachable" in status["children"]
        for figure in call_callback(client, SERIES).values():
            text = figure_text(figure["figure"])
            assert "PostgreSQL is unreachable" in text
            assert "Traceback" not in text
        versions = call_callback(client, VERSIONS)
        assert (
            "PostgreSQL is unreachable"
            in versions["versions-table"]["children"]["props"]["children"]
        )
        assert "PostgreSQL is unreachable" in figure_text(versions[VERSION_GRAPH]["figure"])
        ready = client.get("/ready")
        assert ready.status_code == 200
        assert ready.json() == {"status": "degraded", "database": "down"}
        assert "cv_database_connected 0.0" in client.get("/metrics").text
    after = REGISTRY.get_sample_value(
        "cv_dashboard_query_failures_total", {"query": "series", "reason": "unreachable"}
    )
    assert after == before + 1


def test_a_query_over_its_time_limit_says_so_and_the_database_stays_up(
    dashboard_settings: Settings, db: psycopg.Connection
) -> None:
    settings = dashboard_settings.model_copy(update={"dashboard_query_timeout_s": 0.3})
    with TestClient(create_app(settings)) as client:
        client.auth = (USER, PASSWORD)
        with db.transaction():
            # Holding this lock makes the dashboard's read wait past its time limit.
            db.execute("LOCK TABLE monitoring IN ACCESS EXCLUSIVE MODE")
            figures = call_callback(client, SERIES)
        for figure in figures.values():
            assert "took too long" in figure_text(figure["figure"])
        assert client.get("/ready").json()["database"] == "ok"


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'{"output": "nowhere.figure", "outputs": {}, "inputs": []}',
        b'{"output": "graph-traffic.figure"}',
        b'{"output": "graph-traffic.figure", "outputs": {}, "inputs": [1, 2]}',
    ],
)
def test_malformed_callback_requests_are_400_not_500(client: TestClient, body: bytes) -> None:
    response = client.post(
        "/monitoring/_dash-update-component",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["detail"].startswith("the callback request")


@pytest.mark.parametrize(
    ("start", "end", "reason"),
    [
        ("2026-01-01", "9999-12-31", "a custom range must end before 9999-12-31"),
        ("2020-01-01", "2026-01-01", "a custom range covers at most 1400 days"),
    ],
)
def test_custom_ranges_that_cannot_be_drawn_are_400_with_the_reason(
    client: TestClient, start: str, end: str, reason: str
) -> None:
    body = {
        "output": "graph-confidence.figure",
        "outputs": {"id": "graph-confidence", "property": "figure"},
        "inputs": [
            {"id": "range-preset", "property": "value", "value": "custom"},
            {"id": "range-custom", "property": "start_date", "value": start},
            {"id": "range-custom", "property": "end_date", "value": end},
            {"id": "refresh", "property": "n_intervals", "value": 0},
        ],
    }
    response = client.post("/monitoring/_dash-update-component", json=body)
    assert response.status_code == 400
    assert response.json()["detail"] == reason


def test_the_longest_custom_range_is_drawn_within_the_point_budget(client: TestClient) -> None:
    outputs = [("graph-confidence", "figure")]
    figures = call_callback(client, outputs, "custom", "2022-01-01", "2025-10-31")  # 1400 days
    assert "No predictions between 2022-01-01" in figure_text(figures["graph-confidence"]["figure"])


def test_odd_range_values_fall_back_to_the_default_range(client: TestClient) -> None:
    figures = call_callback(client, SERIES, preset=7, start=["x"], end={"y": 1})  # type: ignore[arg-type]
    for figure in figures.values():
        assert "No predictions between" in figure_text(figure["figure"])


def test_a_query_postgresql_refuses_says_so_and_is_counted(
    dashboard_settings: Settings, db: psycopg.Connection
) -> None:
    # A login that may connect but not read the tables: PostgreSQL answers, and refuses.
    role = f"dashboard_{uuid.uuid4().hex[:8]}"
    db.execute(f"CREATE ROLE {role} LOGIN")
    url = urlsplit(dashboard_settings.database_url)
    as_role = urlunsplit(url._replace(netloc=f"{role}@{url.hostname}:{url.port}"))
    settings = dashboard_settings.model_copy(update={"database_url": as_role})
    labels = {"query": "series", "reason": "refused"}
    before = REGISTRY.get_sample_value("cv_dashboard_query_failures_total", labels) or 0
    try:
        with TestClient(create_app(settings)) as client:
            client.auth = (USER, PASSWORD)
            figures = call_callback(client, SERIES)
            assert client.get("/ready").json()["database"] == "ok"
    finally:
        db.execute(f"DROP ROLE {role}")
    for figure in figures.values():
        text = figure_text(figure["figure"])
        assert "PostgreSQL refused the query" in text
        assert "permission" not in text  # PostgreSQL's own words stay in the log
    assert REGISTRY.get_sample_value("cv_dashboard_query_failures_total", labels) == before + 1
