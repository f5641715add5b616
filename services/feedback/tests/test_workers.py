"""Two worker processes: counters add up across them and the gauges are exposed once."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from harness.services import ServiceProcess
from services.feedback.tests.conftest import ADMIN_TOKEN, feedback_body, insert_prediction

pytestmark = pytest.mark.slow


def test_metrics_add_up_over_two_workers(
    database_url: str, db: psycopg.Connection, tmp_path: Path
) -> None:
    ids = [insert_prediction(db) for _ in range(12)]
    env = {
        "DATABASE_URL": database_url,
        "FEEDBACK_ADMIN_TOKEN": ADMIN_TOKEN,
        "ACCURACY_REFRESH_S": "0.2",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    with ServiceProcess("feedback", env, tmp_path, workers=2) as service:
        # A fresh connection per request spreads them over both workers.
        for prediction_id in ids:
            response = httpx.post(f"{service.url}/feedback", json=feedback_body(prediction_id))
            assert response.status_code == 201
        deadline = time.monotonic() + 20
        text = httpx.get(f"{service.url}/metrics").text
        while "cv_feedback_accuracy_predictions 12.0" not in text and time.monotonic() < deadline:
            time.sleep(0.2)
            text = httpx.get(f"{service.url}/metrics").text

    assert re.search(r'^cv_user_feedback_total\{satisfaction="unsatisfied"\} 12\.0$', text, re.M)
    assert len(re.findall(r"^cv_feedback_accuracy_predictions ", text, re.M)) == 1
    assert "cv_feedback_accuracy_predictions 12.0" in text
    assert "cv_feedback_accuracy_ratio 0.0" in text
    assert re.search(
        r'^http_requests_total\{handler="/feedback",method="POST",status="2xx"\} 12\.0$', text, re.M
    )
    assert db.execute("SELECT count(*) FROM feedback").fetchone() == (12,)
