"""The model-watch section on a hand-made day of checks: drift against its threshold, estimated
beside feedback accuracy, and the newest reliability curve of each version."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.types.json import Jsonb

from services.common.proportions import Z95
from services.dashboard.layout import WATCH_GRAPHS
from services.dashboard.tests.conftest import call_callback, figure_text
from services.dashboard.tests.test_queries import B0, DAY, WINDOW, as_dicts, run
from services.dashboard.tests.test_versions import _rows

CURVE = {"confidence": [None] * 12 + [0.85, 0.92, 0.99], "accuracy": [None] * 12 + [0.5, 1.0, 1.0],
         "count": [0] * 12 + [2, 3, 15]}  # fmt: skip
OLD_CURVE = {"confidence": [None] * 14 + [0.99], "accuracy": [None] * 14 + [1.0],
             "count": [0] * 14 + [9]}  # fmt: skip
# (minute of the day, version, window, score, threshold, p, estimated, stderr, labelled,
#  feedback accuracy, calibration error, reliability). Buckets are 15 min: 1.0.0 is checked in
# buckets 0, 1 and 3 (none in 2: the graph breaks there), and drifts in bucket 1.
CHECKS = [
    (1, "1.0.0", 200, 0.010, 0.050, 0.40, 0.98, 0.010, 0, None, None, None),
    (2, "1.0.0", 200, 0.030, 0.050, 0.20, 0.96, 0.012, 10, 0.90, 0.05, OLD_CURVE),
    (16, "1.0.0", 200, 0.200, 0.050, 0.002, 0.90, 0.020, 12, 0.80, 0.08, None),
    (46, "1.0.0", 200, 0.020, 0.060, 0.30, 0.97, 0.010, 20, 0.85, 0.04, CURVE),
    (5, "2.0.0", 50, None, None, None, 0.99, 0.005, 0, None, None, None),
    # Outside the day: just before it, and exactly at its (exclusive) end.
    (-1, "1.0.0", 200, 0.9, 0.05, 0.001, 0.5, 0.1, 30, 0.5, 0.3, OLD_CURVE),
    (24 * 60, "2.0.0", 200, 0.9, 0.05, 0.001, 0.5, 0.1, 30, 0.5, 0.3, OLD_CURVE),
]
OUTPUTS = [("watch-table", "children")] + [(graph_id, "figure") for graph_id in WATCH_GRAPHS]


@pytest.fixture
def checks(db: psycopg.Connection) -> None:
    """The checks above, as inference's model watch writes them."""
    for minute, version, window, score, threshold, p, estimate, stderr, labelled, accuracy, \
            ece, curve in CHECKS:  # fmt: skip
        db.execute(
            "INSERT INTO drift_checks (at, model_version, window_size, reference_size,"
            " drift_score, drift_threshold, drift_p_value, estimated_accuracy, estimated_stderr,"
            " predictions, labelled, feedback_accuracy, calibration_error, reliability)"
            " VALUES (%s, %s, %s, 1000, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (B0 + timedelta(minutes=minute), version, window, score, threshold, p, estimate,
             stderr, window, labelled, accuracy, ece, None if curve is None else Jsonb(curve)),
        )  # fmt: skip


def _watch(client: TestClient) -> tuple[Any, dict[str, dict[str, Any]]]:
    answer = call_callback(client, OUTPUTS, "custom", DAY, DAY)
    return answer["watch-table"]["children"], {g: answer[g]["figure"] for g in WATCH_GRAPHS}


@pytest.mark.usefixtures("checks")
def test_series_average_each_bucket_and_count_drifted_checks(database_url: str) -> None:
    rows = as_dicts(run(database_url, lambda q: q.watch_series(WINDOW)))
    approx = pytest.approx
    shapes = [(row["bucket"] - B0, row["version"], row["checks"], row["drifted"]) for row in rows]
    assert shapes == [
        (timedelta(0), "1.0.0", 2, 0),
        (timedelta(0), "2.0.0", 1, 0),
        (timedelta(minutes=15), "1.0.0", 1, 1),
        (timedelta(minutes=45), "1.0.0", 1, 0),
    ]  # fmt: skip
    first = rows[0]
    assert first["drift_score"] == approx(0.02)
    assert first["estimated_accuracy"] == approx(0.97)
    assert first["feedback_accuracy"] == approx(0.90)  # the one check with labelled answers
    assert first["labelled"] == 10
    assert rows[1]["drift_score"] is None


@pytest.mark.usefixtures("checks")
def test_latest_check_of_each_version_carries_its_newest_reliability_curve(
    database_url: str,
) -> None:
    latest = as_dicts(run(database_url, lambda q: q.watch_latest(WINDOW)))
    assert [(row["version"], row["at"] - B0) for row in latest] == [
        ("1.0.0", timedelta(minutes=46)),
        ("2.0.0", timedelta(minutes=5)),
    ]
    assert json.loads(latest[0]["reliability"]) == CURVE
    assert latest[0]["reliability_error"] == pytest.approx(0.04)
    assert latest[1]["reliability"] is None  # its only labelled check is outside the day


@pytest.mark.usefixtures("checks")
def test_table_and_figures_of_the_day(client: TestClient) -> None:
    table, figures = _watch(client)
    assert _rows(table) == [
        ["1.0.0", "2026-01-01 00:46:00", "no drift (p = 0.300, 200 answers)",
         f"97.0% ± {Z95 * 0.01:.1%} (200 answers)", "85.0% (20 labelled)", "4.0%"],
        ["2.0.0", "2026-01-01 00:05:00", "window filling (50 answers)",
         f"99.0% ± {Z95 * 0.005:.1%} (50 answers)", "no labelled answers", "—"],
    ]  # fmt: skip

    score, threshold, drifted = figures["graph-drift"]["data"]  # 2.0.0 was never tested
    # Every quarter hour of the day is drawn; no check in bucket 2 (00:30) nor after 00:45:
    # gaps, not a line from 00:15 to 00:45.
    assert len(score["x"]) == 96
    assert score["x"][:4] == ["2026-01-01 00:00", "2026-01-01 00:15", "2026-01-01 00:30",
                              "2026-01-01 00:45"]  # fmt: skip
    assert score["y"] == pytest.approx([0.02, 0.2, None, 0.02] + [None] * 92)
    assert threshold["y"][:4] == pytest.approx([0.05, 0.05, None, 0.06])
    assert drifted["x"] == ["2026-01-01 00:15"]
    assert drifted["customdata"] == [[1, 1]]

    accuracy = figures["graph-estimated-accuracy"]["data"]
    band, estimated, feedback = accuracy[:3]  # 1.0.0's band, line and feedback
    assert estimated["y"][:4] == pytest.approx([0.97, 0.90, None, 0.97])
    # The band's steps: 00:00's top edge, then 00:15's; 00:15's bottom edge comes back.
    assert band["y"][0] == band["y"][1] == pytest.approx(0.97 + Z95 * 0.011)
    assert band["y"][4] == band["y"][5] == pytest.approx(0.90 - Z95 * 0.020)
    assert feedback["y"][:4] == pytest.approx([0.90, 0.80, None, 0.85])
    assert feedback["customdata"][:4] == [[10], [12], [None], [20]]
    assert [trace.get("name") for trace in accuracy[3:]] == [
        "2.0.0 95% band", "2.0.0 estimated", "2.0.0 feedback"
    ]  # fmt: skip
    assert accuracy[4]["y"][:2] == pytest.approx([0.99, None])
    assert set(accuracy[5]["y"]) == {None}  # none of 2.0.0's answers were labelled

    diagonal, curve = figures["graph-reliability"]["data"]
    assert diagonal["x"] == [0.5, 1.0]
    assert curve["x"] == pytest.approx([0.85, 0.92, 0.99])  # the empty bins are left out
    assert curve["y"] == pytest.approx([0.5, 1.0, 1.0])
    assert curve["customdata"] == [[2], [3], [15]]
    assert curve["name"] == "1.0.0 (ECE 4.0%, 01 Jan 00:46)"
    json.dumps(figures)  # sent to the browser as is


def test_an_empty_range_says_why(client: TestClient) -> None:
    table, figures = _watch(client)
    assert "No model-watch checks between 2026-01-01" in table["props"]["children"]
    assert all("DRIFT_INTERVAL_S" in figure_text(figure) for figure in figures.values())


def test_versions_not_yet_tested_or_labelled_say_so(
    client: TestClient, db: psycopg.Connection
) -> None:
    db.execute(
        "INSERT INTO drift_checks (at, model_version, window_size, estimated_accuracy,"
        " estimated_stderr, predictions, labelled) VALUES (%s, '1.0.0', 12, 0.9, 0.05, 12, 0)",
        (B0 + timedelta(hours=3),),
    )
    table, figures = _watch(client)
    # Written by a replica serving a model whose card has no reference set.
    assert _rows(table)[0][2] == "no reference set in its card"
    assert "No full window of answers yet" in figure_text(figures["graph-drift"])
    assert "No labelled answers" in figure_text(figures["graph-reliability"])
    assert figures["graph-estimated-accuracy"]["data"][1]["y"][12] == 0.9  # 03:00
