"""Predictions keep being served while PostgreSQL restarts, and none of them is lost."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from harness.services import ServiceProcess
from harness.waiting import wait_until
from services.common.migrate import apply_migrations, create_database_if_missing, with_database
from tests.support.images import jpeg
from tests.support.postgres import PrivatePostgres

pytestmark = pytest.mark.slow


class Traffic(threading.Thread):
    """A steady stream of predictions, remembering which ones succeeded."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.succeeded: list[str] = []
        self.failed: list[str] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        photo = jpeg()
        with httpx.Client(timeout=10) as client:
            while not self._stop_event.is_set():
                try:
                    response = client.post(
                        f"{self.url}/predict", files={"file": ("a.jpg", photo, "image/jpeg")}
                    )
                except httpx.TransportError as error:
                    self.failed.append(repr(error))
                    continue
                if response.status_code == 200:
                    self.succeeded.append(response.json()["prediction_id"])
                else:
                    self.failed.append(f"{response.status_code} {response.text}")
                time.sleep(0.01)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=30)


def metric_value(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exposed")


def stored_ids(database_url: str) -> set[str]:
    with psycopg.connect(database_url) as connection:
        return {row[0] for row in connection.execute("SELECT id::text FROM monitoring")}


def test_prediction_survives_database_restart(tmp_path: Path, model_path: Path) -> None:
    server = PrivatePostgres()
    server.init()
    server.start()
    database_url = with_database(server.url, "predictions_feedback")
    create_database_if_missing(database_url)
    apply_migrations(database_url)
    env = {
        "DATABASE_URL": database_url,
        "MODEL_PATH": str(model_path),
        "DB_PROBE_INTERVAL_S": "0.3",
        "DB_CONNECT_TIMEOUT_S": "1",
    }
    try:
        with ServiceProcess("inference", env, tmp_path) as service:
            traffic = Traffic(service.url)
            traffic.start()
            assert wait_until(lambda: len(traffic.succeeded) >= 20)

            server.stop(mode="immediate")
            served_before_outage = len(traffic.succeeded)
            assert wait_until(lambda: metric_value(service.url, "cv_database_connected") == 0)
            ready = httpx.get(f"{service.url}/ready")
            assert ready.status_code == 200
            assert ready.json()["database"] == "down"
            assert wait_until(lambda: len(traffic.succeeded) >= served_before_outage + 50)
            assert metric_value(service.url, "cv_prediction_writes_pending") > 0

            server.start()
            assert wait_until(lambda: metric_value(service.url, "cv_database_connected") == 1)
            time.sleep(1)
            traffic.stop()

            assert traffic.failed == []
            expected = set(traffic.succeeded)
            assert wait_until(lambda: expected <= stored_ids(database_url))
            assert metric_value(service.url, "cv_prediction_writes_pending") == 0
            assert stored_ids(database_url) == expected
    finally:
        server.destroy()
