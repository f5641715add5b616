"""Model lifecycle in one replica: the admin API, canary routing, the shadow, hot swaps.

The active model is the tiny colour model (red = cat); the candidate is the same model
inverted (red = dog), so which version answered is visible in every answer.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from pydantic import ValidationError

from services.common.settings import DEV_INFERENCE_ADMIN_TOKEN
from services.inference.app import create_app
from services.inference.lineup import canary_draw
from services.inference.registry import Registry
from services.inference.settings import Settings
from tests.support.images import jpeg
from tests.support.tiny_model import build_tiny_model

TOKEN = "inference-admin-test-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
RED = (250, 10, 10)


@pytest.fixture
def candidate(tmp_path: Path) -> Path:
    return build_tiny_model(tmp_path / "candidate", version="tiny-2", inverted=True)


@pytest.fixture
def shadow_queue_limit() -> int:
    return 32


@pytest.fixture
def poll_s() -> float:
    return 0.2


@pytest.fixture
def client(
    database_url: str, tiny_model_path: Path, shadow_queue_limit: int, poll_s: float
) -> Iterator[TestClient]:
    settings = Settings(
        database_url=database_url,
        model_path=tiny_model_path,
        inference_admin_token=TOKEN,
        db_probe_interval_s=0.2,
        model_registry_poll_s=poll_s,
        canary_check_interval_s=3600,
        shadow_queue_limit=shadow_queue_limit,
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def register(client: TestClient, model: Path) -> dict:
    files = {
        "model": ("model.onnx", model.read_bytes(), "application/octet-stream"),
        "card": ("model.json", model.with_suffix(".json").read_bytes(), "application/json"),
    }
    response = client.post("/admin/models", files=files, headers=ADMIN)
    assert response.status_code == 201, response.text
    return response.json()


def predict(client: TestClient, color: tuple[int, int, int] = RED) -> dict:
    response = client.post("/predict", files={"file": ("x.jpg", jpeg(color), "image/jpeg")})
    assert response.status_code == 200, response.text
    return response.json()


def sample(metric: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(metric, labels) or 0.0


def test_admin_routes_refuse_without_the_token(client: TestClient, candidate: Path) -> None:
    assert client.get("/admin/models").status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert client.post("/admin/models/tiny-1/promote", headers=wrong).status_code == 401
    assert client.post("/admin/models/rollback").status_code == 401


def test_an_empty_registry_starts_with_the_configured_model_active(client: TestClient) -> None:
    (row,) = client.get("/admin/models", headers=ADMIN).json()
    assert (row["version"], row["role"]) == ("tiny-1", "active")
    assert client.get("/model").json()["lineup"] == {"active": "tiny-1"}
    assert (
        sample(
            "cv_model_info",
            name="tiny-cat-dog",
            version="tiny-1",
            sha256=row["sha256"],
            role="active",
        )
        == 1
    )


def test_canary_answers_exactly_the_predictions_its_share_draws(
    client: TestClient, candidate: Path, db: psycopg.Connection
) -> None:
    register(client, candidate)
    response = client.post("/admin/models/tiny-2/canary", json={"share": 0.5}, headers=ADMIN)
    assert response.status_code == 200, response.text
    assert client.get("/model").json()["lineup"] == {"active": "tiny-1", "canary": "tiny-2"}
    answers = [predict(client) for _ in range(40)]
    for answer in answers:
        drawn = canary_draw(uuid.UUID(answer["prediction_id"])) < 0.5
        assert answer["model_version"] == ("tiny-2" if drawn else "tiny-1")
        assert answer["prediction"] == ("dog" if drawn else "cat")
    assert 5 < sum(answer["model_version"] == "tiny-2" for answer in answers) < 35
    # Every stored row carries the version that answered.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        stored = dict(db.execute("SELECT id::text, model_version FROM monitoring").fetchall())
        if len(stored) == len(answers):
            break
        time.sleep(0.1)
    assert stored == {answer["prediction_id"]: answer["model_version"] for answer in answers}


def test_a_batch_is_split_between_canary_and_active_and_keeps_its_order(
    client: TestClient, candidate: Path
) -> None:
    register(client, candidate)
    client.post("/admin/models/tiny-2/canary", json={"share": 0.5}, headers=ADMIN)
    colors = [RED, (10, 10, 250)] * 6
    files = [("file", (f"{i}.jpg", jpeg(color), "image/jpeg")) for i, color in enumerate(colors)]
    response = client.post("/predict", files=files)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == len(colors)
    for color, answer in zip(colors, predictions, strict=True):
        inverted = answer["model_version"] == "tiny-2"
        assert inverted == (canary_draw(uuid.UUID(answer["prediction_id"])) < 0.5)
        red_label, blue_label = ("dog", "cat") if inverted else ("cat", "dog")
        assert answer["prediction"] == (red_label if color == RED else blue_label)


def test_the_shadow_scores_answered_photos_apart_and_is_never_shown(
    client: TestClient, candidate: Path, db: psycopg.Connection
) -> None:
    register(client, candidate)
    assert client.post("/admin/models/tiny-2/shadow", headers=ADMIN).status_code == 200
    disagreed = sample("cv_shadow_predictions_total", model_version="tiny-2", agreement="disagree")
    answers = [predict(client) for _ in range(10)]
    assert {answer["model_version"] for answer in answers} == {"tiny-1"}
    assert {answer["prediction"] for answer in answers} == {"cat"}
    deadline = time.monotonic() + 10
    rows: list = []
    while time.monotonic() < deadline and len(rows) < len(answers):
        rows = db.execute(
            "SELECT prediction_id::text, model_version, prediction_result FROM shadow_predictions"
        ).fetchall()
        time.sleep(0.1)
    assert {row[0] for row in rows} == {answer["prediction_id"] for answer in answers}
    assert {(row[1], row[2]) for row in rows} == {("tiny-2", "dog")}
    counted = sample("cv_shadow_predictions_total", model_version="tiny-2", agreement="disagree")
    assert counted - disagreed == len(answers)


@pytest.mark.parametrize("shadow_queue_limit", [1])
def test_a_shadow_that_falls_behind_drops_photos_and_counts_them(
    client: TestClient, candidate: Path, db: psycopg.Connection
) -> None:
    register(client, candidate)
    client.post("/admin/models/tiny-2/shadow", headers=ADMIN)
    dropped = sample("cv_shadow_dropped_total", model_version="tiny-2")
    files = [("file", (f"{i}.jpg", jpeg(RED), "image/jpeg")) for i in range(12)]
    # All twelve reach the queue at once, before its worker runs: one fits, eleven are dropped
    # and the answers do not wait for any of them.
    response = client.post("/predict", files=files)
    assert response.status_code == 200
    assert len(response.json()["predictions"]) == 12
    assert sample("cv_shadow_dropped_total", model_version="tiny-2") - dropped == 11
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        (scored,) = db.execute("SELECT count(*) FROM shadow_predictions").fetchone()
        if scored:
            break
        time.sleep(0.1)
    assert scored == 1


def test_promote_swaps_models_under_load_without_a_failed_request(
    client: TestClient, candidate: Path
) -> None:
    register(client, candidate)
    with ThreadPoolExecutor(4) as pool:
        load = [pool.submit(lambda: [predict(client) for _ in range(15)]) for _ in range(3)]
        time.sleep(0.05)
        promoted = client.post("/admin/models/tiny-2/promote", headers=ADMIN)
        answers = [answer for future in load for answer in future.result()]
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["side_effects"] == [["tiny-1", "active", "retired"]]
    # Every answer is whole and consistent with the version that gave it.
    for answer in answers:
        assert answer["prediction"] == {"tiny-1": "cat", "tiny-2": "dog"}[answer["model_version"]]
    assert predict(client)["model_version"] == "tiny-2"
    rolled_back = client.post("/admin/models/rollback", json={"reason": "test"}, headers=ADMIN)
    assert rolled_back.json()["version"] == "tiny-1"
    assert predict(client)["model_version"] == "tiny-1"
    events = client.get("/admin/models/events", headers=ADMIN).json()
    assert events[0]["reason"] == "test"


@pytest.mark.parametrize("poll_s", [120.0])
def test_a_change_made_elsewhere_is_picked_up_at_once_by_notification(
    client: TestClient, candidate: Path, database_url: str, model_store: Path
) -> None:
    # Another replica, or the CLI on an operator's laptop: only the database is shared.
    elsewhere = Registry(database_url, model_store)
    elsewhere.register(candidate, actor="test")
    elsewhere.promote("tiny-2", actor="test")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and predict(client)["model_version"] != "tiny-2":
        time.sleep(0.05)
    assert predict(client)["model_version"] == "tiny-2"  # long before the 120 s poll


def test_a_model_that_cannot_run_is_never_swapped_in(client: TestClient, tmp_path: Path) -> None:
    broken = build_tiny_model(tmp_path / "broken", version="tiny-broken")
    card = broken.with_suffix(".json")
    # The graph takes 56 px; a card asking for 64 px makes every call fail.
    card.write_text(card.read_text().replace('"crop": 56', '"crop": 64'))
    register(client, broken)
    failed = sample("cv_model_swaps_total", outcome="failed")
    response = client.post("/admin/models/tiny-broken/promote", headers=ADMIN)
    assert response.status_code == 200  # the registry took it; this replica refuses to serve it
    assert sample("cv_model_swaps_total", outcome="failed") > failed
    assert predict(client)["model_version"] == "tiny-1"


def test_a_refused_upload_names_the_files_never_the_servers_folders(
    client: TestClient, candidate: Path
) -> None:
    card = json.loads(candidate.with_suffix(".json").read_text())
    card["drift_reference"] = {"file": "model.reference.npy", "sha256": "0" * 64}
    files = {
        "model": ("model.onnx", candidate.read_bytes(), "application/octet-stream"),
        "card": ("model.json", json.dumps(card).encode(), "application/json"),
    }
    without = client.post("/admin/models", files=files, headers=ADMIN)
    assert without.status_code == 422
    assert without.json()["detail"] == (
        "the card names a drift reference (model.reference.npy); none came with it"
    )
    files["reference"] = ("model.reference.npy", b"not numpy", "application/octet-stream")
    mismatched = client.post("/admin/models", files=files, headers=ADMIN)
    assert mismatched.status_code == 422
    assert mismatched.json()["detail"] == (
        "drift reference model.reference.npy does not match its card's sha256"
    )
    garbage = client.post(
        "/admin/models",
        files={"model": ("m.onnx", b"not onnx"), "card": ("m.json", b"{}")},
        headers=ADMIN,
    )
    assert garbage.status_code == 422
    for refused in (without, mismatched, garbage):
        assert tempfile.gettempdir() not in refused.text, refused.text


def test_registry_errors_are_clear_4xx(client: TestClient, candidate: Path) -> None:
    assert client.post("/admin/models/nope/promote", headers=ADMIN).status_code == 404
    assert client.post("/admin/models/tiny-1/retire", headers=ADMIN).status_code == 409
    register(client, candidate)
    share = client.post("/admin/models/tiny-2/canary", json={"share": 2}, headers=ADMIN)
    assert share.status_code == 422
    missing = client.post("/admin/models", files={"model": ("m", b"x")}, headers=ADMIN)
    assert missing.status_code == 422
    garbage = client.post(
        "/admin/models",
        files={"model": ("m.onnx", b"not onnx"), "card": ("m.json", b"{}")},
        headers=ADMIN,
    )
    assert garbage.status_code == 422


def test_only_dev_mode_gives_the_admin_api_its_dev_token(
    database_url: str, model_path: Path
) -> None:
    dev = Settings(database_url=database_url, model_path=model_path, dev_mode=True)
    assert dev.inference_admin_token == DEV_INFERENCE_ADMIN_TOKEN
    production = Settings(database_url=database_url, model_path=model_path, dev_mode=False)
    with TestClient(create_app(production)) as client:
        dev_token = {"Authorization": f"Bearer {DEV_INFERENCE_ADMIN_TOKEN}"}
        assert client.get("/admin/models", headers=dev_token).status_code == 401
    with pytest.raises(ValidationError, match="published in this repository"):
        Settings(inference_admin_token=DEV_INFERENCE_ADMIN_TOKEN, dev_mode=False)
