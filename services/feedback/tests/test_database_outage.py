"""A PostgreSQL outage while feedback arrives: retryable 503s, then recovery, nothing half-kept."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest

from harness.services import ServiceProcess
from services.common.migrate import apply_migrations
from services.feedback.tests.conftest import ADMIN_TOKEN, feedback_body, insert_prediction
from tests.support.postgres import PrivatePostgres

pytestmark = pytest.mark.slow


def test_feedback_during_an_outage_is_refused_retryably_then_accepted(tmp_path: Path) -> None:
    postgres = PrivatePostgres()
    postgres.init()
    postgres.start()
    try:
        apply_migrations(postgres.url)
        with psycopg.connect(postgres.url, autocommit=True) as db:
            prediction_id = insert_prediction(db)
        env = {
            "DATABASE_URL": postgres.url,
            "FEEDBACK_ADMIN_TOKEN": ADMIN_TOKEN,
            "DB_PROBE_INTERVAL_S": "0.2",
            "DB_CONNECT_TIMEOUT_S": "1",
            "RETRY_AFTER_S": "3",
        }
        with ServiceProcess("feedback", env, tmp_path) as service:
            body = feedback_body(prediction_id)
            postgres.stop("immediate")

            refused = httpx.post(f"{service.url}/feedback", json=body, timeout=10)
            ready = httpx.get(f"{service.url}/ready", timeout=10)

            postgres.start()
            deadline = time.monotonic() + 30
            accepted = httpx.post(f"{service.url}/feedback", json=body, timeout=10)
            while accepted.status_code == 503 and time.monotonic() < deadline:
                time.sleep(0.2)
                accepted = httpx.post(f"{service.url}/feedback", json=body, timeout=10)
            unknown = httpx.post(
                f"{service.url}/feedback", json=feedback_body(uuid.uuid4()), timeout=10
            )

        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "3"
        assert ready.status_code == 503
        assert ready.json()["database"] == "down"
        assert accepted.status_code == 201
        assert unknown.status_code == 404
        with psycopg.connect(postgres.url, autocommit=True) as db:
            assert db.execute("SELECT revision FROM feedback").fetchall() == [(1,)]
    finally:
        postgres.destroy()
