"""The model-versions section on a hand-made day: per-version figures, accuracy and its interval."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.types.json import Jsonb

from services.dashboard.layout import VERSION_GRAPH
from services.dashboard.queries import VersionFigures
from services.dashboard.tests.conftest import call_callback, figure_text
from services.dashboard.tests.test_queries import B0, DAY, WINDOW, run

ACTIVE_SINCE = datetime(2025, 12, 1, tzinfo=UTC)
CANARY_SINCE = datetime(2025, 12, 31, 12, tzinfo=UTC)
# (version, role, canary share, since); 0.8.0 answered nothing that day, 0.9.0 is unregistered.
REGISTRY = [
    ("1.0.0", "active", None, ACTIVE_SINCE),
    ("1.1.0", "canary", 0.25, CANARY_SINCE),
    ("2.0.0", "shadow", None, CANARY_SINCE),
    ("0.8.0", "retired", None, ACTIVE_SINCE),
]
# (minute of the day, version, answer, confidence, inference ms, feedback, shadow 2.0.0's answer)
# Feedback is "satisfied" / "unsatisfied", optionally with the true label after a colon.
ANSWERS = [
    (1, "1.0.0", "cat", 0.9, 1.0, "satisfied", "cat"),
    (2, "1.0.0", "cat", 0.7, 2.0, "satisfied:cat", "cat"),
    (3, "1.0.0", "cat", 0.9, 3.0, "satisfied", "cat"),
    (4, "1.0.0", "dog", 0.7, 4.0, "satisfied", "cat"),  # the shadow is wrong
    (5, "1.0.0", "cat", 0.9, 5.0, "satisfied", "cat"),
    (6, "1.0.0", "cat", 0.7, 6.0, "satisfied", "cat"),
    (7, "1.0.0", "cat", 0.9, 7.0, "satisfied:cat", "cat"),
    (8, "1.0.0", "dog", 0.7, 8.0, "satisfied", "dog"),
    (9, "1.0.0", "cat", 0.9, 9.0, "unsatisfied", "dog"),  # truth dog: the shadow is right
    (10, "1.0.0", "cat", 0.7, 10.0, "unsatisfied:dog", "dog"),  # likewise, said outright
    (11, "1.0.0", "cat", 0.9, 11.0, None, "cat"),
    (12, "1.0.0", "dog", 0.7, 12.0, None, "dog"),
    (20, "1.1.0", "cat", 0.95, 10.0, "satisfied", None),
    (21, "1.1.0", "dog", 0.95, 20.0, "satisfied:dog", None),
    (22, "1.1.0", "cat", 0.95, 30.0, "satisfied", None),
    (23, "1.1.0", "dog", 0.95, 40.0, "satisfied", None),
    (24, "1.1.0", "cat", 0.95, 50.0, "satisfied", None),
    (25, "1.1.0", "dog", 0.95, 60.0, None, None),
    (30, "0.9.0", "dog", 0.6, 100.0, None, None),
    (31, "0.9.0", "dog", 0.8, 200.0, None, None),
    # Outside the day: just before it, and exactly at its (exclusive) end.
    (-1, "1.0.0", "cat", 0.9, 1.0, "unsatisfied", "dog"),
    (24 * 60, "1.1.0", "cat", 0.9, 1.0, "unsatisfied", None),
]


def _shadow_ms(minute: int) -> float:
    return 2.0 * minute


@pytest.fixture
def versions_dataset(db: psycopg.Connection) -> None:
    """The day above as the services leave it: registry, predictions, feedback, shadow answers."""
    for version, role, share, since in REGISTRY:
        db.execute(
            "INSERT INTO model_versions (version, name, sha256, file_name, card, role,"
            " canary_share, role_since) VALUES (%s, 'cat-dog', %s, %s, %s, %s, %s, %s)",
            (version, "0" * 64, f"{version}.onnx", Jsonb({}), role, share, since),
        )
    for minute, version, label, confidence, ms, feedback, shadow in ANSWERS:
        prediction_id = uuid.uuid4()
        created = B0 + timedelta(minutes=minute)
        proba_cat = confidence if label == "cat" else 1 - confidence
        satisfaction, _, true_label = (feedback or "").partition(":")
        db.execute(
            "INSERT INTO monitoring (id, created_at, prediction_result, proba_cat, proba_dog,"
            " confidence, inference_time_ms, model_version, user_feedback, rgpd_consent)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (prediction_id, created, label, proba_cat, 1 - proba_cat, confidence, ms, version,
             None if feedback is None else int(satisfaction == "satisfied"), feedback is not None),
        )  # fmt: skip
        if feedback is not None:
            db.execute(
                "INSERT INTO feedback (prediction_id, satisfaction, true_label, consent_at)"
                " VALUES (%s, %s, %s, %s)",
                (prediction_id, satisfaction, true_label or None, created),
            )
        if shadow is not None:
            db.execute(
                "INSERT INTO shadow_predictions (prediction_id, model_version, created_at,"
                " prediction_result, proba_cat, confidence, inference_time_ms)"
                " VALUES (%s, '2.0.0', %s, %s, %s, 0.85, %s)",
                (prediction_id, created, shadow, 0.85 if shadow == "cat" else 0.15,
                 _shadow_ms(minute)),
            )  # fmt: skip


@pytest.mark.usefixtures("versions_dataset")
def test_each_version_with_its_figures_role_and_labelled_accuracy(database_url: str) -> None:
    figures = run(database_url, lambda q: q.versions(WINDOW))
    approx = pytest.approx
    assert figures == [
        # 12 of 20 answers; ms 1..12: p50 6.5, p95 at rank 10.45 = 11.45. Labelled rows 1-10,
        # wrong where the user was unsatisfied (rows 9 and 10).
        VersionFigures(
            version="1.0.0", shadow=False, role="active", canary_share=None,
            role_since=ACTIVE_SINCE, answers=12, share=approx(0.6), cats=9,
            mean_confidence=approx(0.8), p50_ms=approx(6.5), p95_ms=approx(11.45),
            labelled=10, correct=8, agreed=None,
        ),
        # ms 10..60: p50 35, p95 at rank 4.75 = 57.5.
        VersionFigures(
            version="1.1.0", shadow=False, role="canary", canary_share=0.25,
            role_since=CANARY_SINCE, answers=6, share=approx(0.3), cats=3,
            mean_confidence=approx(0.95), p50_ms=approx(35.0), p95_ms=approx(57.5),
            labelled=5, correct=5, agreed=None,
        ),
        VersionFigures(
            version="0.9.0", shadow=False, role=None, canary_share=None, role_since=None,
            answers=2, share=approx(0.1), cats=0, mean_confidence=approx(0.7),
            p50_ms=approx(150.0), p95_ms=approx(195.0), labelled=0, correct=0, agreed=None,
        ),
        # Scored the 12 answers of 1.0.0 (ms 2..24): disagrees on rows 4, 9 and 10, of which
        # 9 and 10 are right (the truth was dog) and 4 wrong.
        VersionFigures(
            version="2.0.0", shadow=True, role="shadow", canary_share=None,
            role_since=CANARY_SINCE, answers=12, share=approx(0.6), cats=8,
            mean_confidence=approx(0.85), p50_ms=approx(13.0), p95_ms=approx(22.9),
            labelled=10, correct=9, agreed=9,
        ),
    ]  # fmt: skip


def _versions(client: TestClient) -> tuple[Any, dict[str, Any]]:
    answer = call_callback(
        client, [("versions-table", "children"), (VERSION_GRAPH, "figure")], "custom", DAY, DAY
    )
    return answer["versions-table"]["children"], answer[VERSION_GRAPH]["figure"]


def _texts(component: Any) -> list[str]:
    """The text of a Dash component tree (as JSON), depth first."""
    if isinstance(component, str):
        return [component]
    if isinstance(component, list):
        return [text for child in component for text in _texts(child)]
    if isinstance(component, dict):
        return _texts(component.get("props", {}).get("children", []))
    return []


def _rows(table: Any) -> list[list[str]]:
    body = table["props"]["children"][1]
    return [[" ".join(_texts(cell)) for cell in row["props"]["children"]]
            for row in body["props"]["children"]]  # fmt: skip


@pytest.mark.usefixtures("versions_dataset")
def test_table_and_accuracy_chart_with_wilson_intervals(client: TestClient) -> None:
    table, figure = _versions(client)
    assert _rows(table) == [
        ["1.0.0", "active since 2025-12-01 00:00", "12", "60.0%", "75.0%", "80.0%",
         "6.5 / 11.4 ms", "80.0% (8 of 10)", "49.0%–94.3% · too few to judge", "—"],
        ["1.1.0", "canary, 25% of traffic since 2025-12-31 12:00", "6", "30.0%", "50.0%",
         "95.0%", "35.0 / 57.5 ms", "100.0% (5 of 5)", "56.6%–100.0% · too few to judge", "—"],
        ["0.9.0", "not in the registry", "2", "10.0%", "0.0%", "70.0%", "150.0 / 195.0 ms",
         "no labelled feedback", "—", "—"],
        ["2.0.0 (shadow)", "shadow since 2025-12-31 12:00", "12", "60.0%", "66.7%", "85.0%",
         "13.0 / 22.9 ms", "90.0% (9 of 10)", "59.6%–98.2% · too few to judge",
         "75.0% (9 of 12)"],
    ]  # fmt: skip
    served, shadow = figure["data"]
    assert served["x"] == ["1.0.0", "1.1.0"]
    assert served["y"] == pytest.approx([0.8, 1.0])
    # Wilson 95% intervals: 8 of 10 is 0.4902-0.9433, 5 of 5 is 0.5655-1 (textbook values).
    assert served["error_y"]["arrayminus"] == pytest.approx([0.8 - 0.4902, 1 - 0.5655], abs=1e-4)
    assert served["error_y"]["array"] == pytest.approx([0.9433 - 0.8, 0.0], abs=1e-4)
    assert shadow["x"] == ["2.0.0 (shadow)"]
    assert shadow["y"] == pytest.approx([0.9])
    assert shadow["error_y"]["arrayminus"] == pytest.approx([0.9 - 0.5958], abs=1e-4)
    assert shadow["error_y"]["array"] == pytest.approx([0.9821 - 0.9], abs=1e-4)
    assert figure["layout"]["yaxis"]["range"] == [0.4, 1.01]
    json.dumps(figure)  # sent to the browser as is


@pytest.mark.usefixtures("versions_dataset")
def test_a_day_without_labelled_feedback_keeps_the_table_and_says_so(
    client: TestClient, db: psycopg.Connection
) -> None:
    db.execute("DELETE FROM feedback")
    table, figure = _versions(client)
    assert [row[7] for row in _rows(table)] == ["no labelled feedback"] * 4
    assert figure["data"] == []
    assert "No labelled feedback on predictions between 2026-01-01" in figure_text(figure)


def test_an_empty_range_says_so(client: TestClient) -> None:
    table, figure = _versions(client)
    assert "No predictions between" in table["props"]["children"]
    assert "No predictions between" in figure_text(figure)
