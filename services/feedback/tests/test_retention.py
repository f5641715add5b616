"""Retention: predictions past RETENTION_DAYS go, with their photo and feedback, three ways."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import psycopg
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from harness.services import REPO_ROOT
from harness.waiting import wait_until
from services.feedback.app import create_app
from services.feedback.settings import Settings
from services.feedback.tests.conftest import ADMIN_TOKEN, InsertPrediction, feedback_body
from tests.support.images import jpeg
from tests.support.postgres import rollup_mismatches


def purged_total() -> float:
    """The purge counter now."""
    return REGISTRY.get_sample_value("cv_retention_purged_total") or 0.0


def remaining(db: psycopg.Connection) -> dict[str, int]:
    """Rows left in each table retention must clear, and predictions the roll-ups count."""
    counts = {
        table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
        for table in ("monitoring", "prediction_photos", "feedback")
    }
    rolled = db.execute("SELECT coalesce(sum(predictions), 0) FROM monitoring_daily").fetchone()
    assert rolled is not None
    return {**counts, "rolled": int(rolled[0])}


def arrange_old_and_recent(
    client: TestClient, prediction: InsertPrediction, db: psycopg.Connection, days: int
) -> tuple[list[object], object]:
    """Two predictions just past retention (with photo and feedback) and one just inside it."""
    now = datetime.now(UTC)
    old = [
        prediction(created_at=now - timedelta(days=days, hours=1), photo=jpeg()) for _ in range(2)
    ]
    recent = prediction(created_at=now - timedelta(days=days) + timedelta(hours=1), photo=jpeg())
    for one in [*old, recent]:
        assert client.post("/feedback", json=feedback_body(one)).status_code == 201
    db.execute("SELECT monitoring_rollup_advance(now(), 100000)")  # the dashboard's roll-up
    assert remaining(db) == {"monitoring": 3, "prediction_photos": 3, "feedback": 3, "rolled": 3}
    return old, recent


def test_admin_purge_removes_expired_predictions_and_all_they_hold(
    client: TestClient, prediction: InsertPrediction, db: psycopg.Connection
) -> None:
    _, recent = arrange_old_and_recent(client, prediction, db, days=180)
    before = purged_total()

    response = client.post(
        "/admin/retention/purge", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )

    assert response.status_code == 200
    assert response.json()["purged"] == 2
    assert remaining(db) == {"monitoring": 1, "prediction_photos": 1, "feedback": 1, "rolled": 1}
    assert rollup_mismatches(db) == []
    assert db.execute("SELECT id FROM monitoring").fetchone() == (recent,)
    assert purged_total() == before + 2


def test_the_service_purges_on_its_own_schedule(
    feedback_settings: Settings, prediction: InsertPrediction, db: psycopg.Connection
) -> None:
    with TestClient(create_app(feedback_settings)) as arranging:
        arrange_old_and_recent(arranging, prediction, db, days=30)
    settings = feedback_settings.model_copy(
        update={"retention_days": 30, "retention_interval_s": 0.2}
    )
    with TestClient(create_app(settings)):
        deadline = time.monotonic() + 20
        while remaining(db)["monitoring"] != 1 and time.monotonic() < deadline:
            time.sleep(0.1)
    assert remaining(db) == {"monitoring": 1, "prediction_photos": 1, "feedback": 1, "rolled": 1}


def test_the_cli_purges_by_hand_and_can_count_first(
    client: TestClient, prediction: InsertPrediction, db: psycopg.Connection, database_url: str
) -> None:
    arrange_old_and_recent(client, prediction, db, days=10)
    command = [sys.executable, "-m", "services.feedback.retention", "--database-url", database_url]

    dry = subprocess.run(
        [*command, "--days", "10", "--dry-run"], capture_output=True, text=True, cwd=REPO_ROOT
    )
    assert dry.returncode == 0, dry.stderr
    assert "2 prediction(s)" in dry.stdout
    assert remaining(db)["monitoring"] == 3

    done = subprocess.run([*command, "--days", "10"], capture_output=True, text=True, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr
    assert "purged 2 prediction(s)" in done.stdout
    assert remaining(db) == {"monitoring": 1, "prediction_photos": 1, "feedback": 1, "rolled": 1}


def test_the_cli_explains_itself() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "services.feedback.retention", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0
    assert "--days" in result.stdout
    assert "--dry-run" in result.stdout


def test_old_erasure_tombstones_are_forgotten(
    client: TestClient, prediction: InsertPrediction, db: psycopg.Connection
) -> None:
    recent, old = prediction(), prediction()
    for one in (recent, old):
        assert client.delete(f"/predictions/{one}").status_code == 204
    db.execute(
        "UPDATE erased_predictions SET erased_at = now() - interval '31 days' "
        "WHERE id_sha256 = sha256(uuid_send(%s::uuid))",
        (old,),
    )

    response = client.post(
        "/admin/retention/purge", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )

    assert response.status_code == 200
    assert db.execute(
        "SELECT count(*) FROM erased_predictions WHERE id_sha256 = sha256(uuid_send(%s::uuid))",
        (recent,),
    ).fetchone() == (1,)
    assert db.execute("SELECT count(*) FROM erased_predictions").fetchone() == (1,)


def test_each_purge_reclaims_the_space_of_erased_photos(
    client: TestClient, prediction: InsertPrediction, db: psycopg.Connection
) -> None:
    def vacuums() -> int:
        row = db.execute(
            "SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'prediction_photos'"
        ).fetchone()
        assert row is not None
        return int(row[0])

    erased = prediction(rgpd_consent=True, photo=jpeg())
    assert client.delete(f"/predictions/{erased}").status_code == 204
    before = vacuums()

    response = client.post(
        "/admin/retention/purge", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )

    assert response.status_code == 200
    assert wait_until(lambda: vacuums() > before, timeout_s=10), "prediction_photos not vacuumed"
