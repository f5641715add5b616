"""Sparse data drawn as it is: two bursts an hour apart, and nothing between them.

Counts are zero in the empty buckets; shares, latency and satisfaction have no value there, so
their lines break instead of sliding from one burst to the next.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from services.dashboard.tests.conftest import call_callback
from services.dashboard.tests.test_queries import B0, DAY

# 15-minute buckets over the day: bursts in buckets 40 (10:00) and 44 (11:00).
FIRST, SECOND, BETWEEN = 40, 44, [41, 42, 43]
SERIES = [("graph-traffic", "figure"), ("graph-versions", "figure"),
          ("graph-low-confidence", "figure"), ("graph-consent", "figure")]  # fmt: skip
LATENCY = [("graph-latency-series", "figure"), ("graph-latency-histogram", "figure")]
SATISFACTION = [("graph-satisfaction", "figure")]


@pytest.fixture
def bursts(db: psycopg.Connection) -> None:
    """Five answers at 10:00-10:04 and five at 11:00-11:04, each with feedback and consent."""
    for hour in (10, 11):
        for minute in range(5):
            prediction_id = uuid.uuid4()
            created = B0 + timedelta(hours=hour, minutes=minute)
            db.execute(
                "INSERT INTO monitoring (id, created_at, prediction_result, proba_cat, proba_dog,"
                " confidence, inference_time_ms, model_version, user_feedback, rgpd_consent)"
                " VALUES (%s, %s, 'cat', 0.9, 0.1, 0.9, %s, '1.0.0', 1, true)",
                (prediction_id, created, 10.0 + minute),
            )


def _figures(client: TestClient, outputs: list[tuple[str, str]]) -> dict[str, Any]:
    answer = call_callback(client, outputs, "custom", DAY, DAY)
    return {graph: answer[graph]["figure"] for graph, _ in outputs}


@pytest.mark.usefixtures("bursts")
def test_counts_are_zero_between_the_bursts(client: TestClient) -> None:
    figures = _figures(client, SERIES)
    for graph in ("graph-traffic", "graph-versions"):
        (trace,) = figures[graph]["data"]
        assert len(trace["x"]) == 96
        assert trace["x"][FIRST] == "2026-01-01 10:00"
        assert trace["y"][FIRST] == trace["y"][SECOND] == 5
        assert [trace["y"][i] for i in BETWEEN] == [0, 0, 0], graph


@pytest.mark.usefixtures("bursts")
def test_shares_latency_and_satisfaction_break_between_the_bursts(client: TestClient) -> None:
    figures = {**_figures(client, SERIES), **_figures(client, LATENCY),
               **_figures(client, SATISFACTION)}  # fmt: skip
    lines = [
        figures["graph-low-confidence"]["data"][0],
        figures["graph-consent"]["data"][0],
        *figures["graph-latency-series"]["data"],
        figures["graph-satisfaction"]["data"][2],
    ]
    for trace in lines:
        assert trace["y"][FIRST] is not None and trace["y"][SECOND] is not None, trace["name"]
        assert [trace["y"][i] for i in BETWEEN] == [None, None, None], trace["name"]
        assert trace["connectgaps"] is False
    p50 = figures["graph-latency-series"]["data"][0]
    assert p50["y"][FIRST] == p50["y"][SECOND] == 12.0  # the median of 10..14 ms
    bars = figures["graph-satisfaction"]["data"][0]
    assert [bars["y"][i] for i in (FIRST, *BETWEEN, SECOND)] == [5, 0, 0, 0, 5]
