"""The health strip's verdicts on rows at each side of each alert threshold."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from services.dashboard.health import Verdict
from services.dashboard.tests.test_queries import run


def _answers(db: psycopg.Connection, count: int, *, ms: float = 10, ago_s: float = 60,
             labelled: int = 0, right: int = 0) -> None:  # fmt: skip
    """`count` dog answers `ago_s` seconds ago taking `ms`; the first `labelled` judged by
    users, the first `right` of those as right."""
    for index in range(count):
        row = db.execute(
            "INSERT INTO monitoring (id, created_at, prediction_result, proba_cat, proba_dog,"
            " confidence, inference_time_ms, model_version) VALUES (gen_random_uuid(),"
            " now() - make_interval(secs => %s), 'dog', 0.1, 0.9, 0.9, %s, '1.0.0') RETURNING id",
            (ago_s, ms),
        ).fetchone()
        assert row is not None
        if index < labelled:
            db.execute(
                "INSERT INTO feedback (prediction_id, satisfaction, true_label, consent_at)"
                " VALUES (%s, %s, NULL, now())",
                (row[0], "satisfied" if index < right else "unsatisfied"),
            )


def _check(db: psycopg.Connection, *, version: str = "1.0.0", estimate: float = 0.99,
           stderr: float = 0.005, score: float | None = 0.01,
           ago_s: float = 60) -> None:  # fmt: skip
    db.execute(
        "INSERT INTO model_versions (version, name, sha256, file_name, card, role) VALUES"
        " ('1.0.0', 'm', 'x', 'm.onnx', '{}', 'active') ON CONFLICT DO NOTHING"
    )
    db.execute(
        "INSERT INTO drift_checks (at, model_version, window_size, predictions, labelled,"
        " drift_score, drift_threshold, estimated_accuracy, estimated_stderr)"
        " VALUES (now() - make_interval(secs => %s), %s, 200, 200, 0, %s, 0.05, %s, %s)",
        (ago_s, version, score, estimate, stderr),
    )


def _pending(db: psycopg.Connection, ago_s: float) -> None:
    db.execute(
        "INSERT INTO notifier_outbox (group_key, route, source, payload, created_at)"
        " VALUES ('g', 'default', 'notify', '{}', now() - make_interval(secs => %s))",
        (ago_s,),
    )


def _verdicts(database_url: str) -> dict[str, Verdict]:
    found = run(database_url, lambda queries: queries.health())
    return {verdict.objective: verdict for verdict in found}


CASES: list[tuple[str, str, Any, str]] = [
    ("availability", "nothing recorded", lambda db: None, "unknown"),
    ("availability", "an answer a minute ago", lambda db: _answers(db, 1), "green"),
    ("availability", "none for two hours", lambda db: _answers(db, 1, ago_s=7200), "amber"),
    ("latency", "p95 400 ms, 80 % of the ceiling", lambda db: _answers(db, 20, ms=400), "green"),
    ("latency", "p95 450 ms, near the 500 ms ceiling", lambda db: _answers(db, 20, ms=450),
     "amber"),
    ("latency", "p95 600 ms, over the ceiling", lambda db: _answers(db, 20, ms=600), "red"),
    ("feedback", "19 labels, 20 needed", lambda db: _answers(db, 19, labelled=19, right=19),
     "unknown"),
    ("feedback", "20 of 20 right: interval above 80 %",
     lambda db: _answers(db, 20, labelled=20, right=20), "green"),
    ("feedback", "17 of 20 right: 85 %, interval reaches under 80 %",
     lambda db: _answers(db, 20, labelled=20, right=17), "amber"),
    ("feedback", "15 of 20 right: 75 %", lambda db: _answers(db, 20, labelled=20, right=15),
     "red"),
    ("estimated", "no check", lambda db: None, "unknown"),
    ("estimated", "a check of another version only", lambda db: _check(db, version="2.0.0"),
     "unknown"),
    ("estimated", "99 % ± 0.5 %", lambda db: _check(db), "green"),
    ("estimated", "96 % ± 1 %: interval under 95 %", lambda db: _check(db, estimate=0.96,
     stderr=0.01), "amber"),
    ("estimated", "94 %", lambda db: _check(db, estimate=0.94), "red"),
    ("drift", "score under its threshold", lambda db: _check(db, score=0.049), "green"),
    ("drift", "score over its threshold", lambda db: _check(db, score=0.051), "red"),
    ("drift", "window not full", lambda db: _check(db, score=None), "unknown"),
    ("drift", "newest check 16 min old", lambda db: _check(db, ago_s=960), "amber"),
    ("notifier", "nothing waiting", lambda db: None, "green"),
    ("notifier", "waiting 200 s", lambda db: _pending(db, 200), "green"),
    ("notifier", "waiting 260 s, near the 300 s ceiling", lambda db: _pending(db, 260), "amber"),
    ("notifier", "waiting 330 s", lambda db: _pending(db, 330), "red"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("objective", "rows", "level"),
    [(objective, rows, level) for objective, _, rows, level in CASES],
    ids=[f"{objective}: {name}" for objective, name, _, _ in CASES],
)
def test_each_objective_is_judged_against_its_alerts_threshold(
    database_url: str, db: psycopg.Connection, objective: str, rows: Any, level: str
) -> None:
    rows(db)
    verdict = _verdicts(database_url)[objective]
    assert verdict.level == level, verdict
