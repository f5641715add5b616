"""The training export: only consented, labelled photos, in the folder layout training reads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
from fastapi.testclient import TestClient

from harness.services import REPO_ROOT
from ml.dataset import list_labelled
from services.feedback.export_photos import export_photos
from services.feedback.tests.conftest import InsertPrediction, feedback_body
from tests.support.images import encode, jpeg, solid


def test_export_writes_labelled_consented_photos_only(
    client: TestClient, prediction: InsertPrediction, tmp_path: Path, database_url: str
) -> None:
    relabelled = prediction(result="cat", photo=jpeg())
    confirmed = prediction(result="cat", photo=encode(solid((1, 2, 3)), "PNG"))
    unlabelled = prediction(result="dog", photo=jpeg())
    no_feedback = prediction(result="dog", photo=jpeg())
    no_photo = prediction(result="dog")
    anonymous = prediction(result="cat", photo=jpeg())
    for body in (
        feedback_body(relabelled, satisfaction="unsatisfied", true_label="dog"),
        feedback_body(confirmed, satisfaction="satisfied", true_label=None),
        feedback_body(unlabelled, satisfaction="unsatisfied", true_label=None),
        feedback_body(no_photo, satisfaction="satisfied", true_label=None),
        feedback_body(anonymous, satisfaction="satisfied", rgpd_consent=False, true_label=None),
    ):
        assert client.post("/feedback", json=body).status_code == 201

    summary = export_photos(database_url, tmp_path, progress=False)

    assert summary.written == 2
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.*")) == sorted(
        [f"dog/{relabelled}.jpg", f"cat/{confirmed}.png"]
    )
    items = list_labelled(tmp_path, ("cat", "dog"))
    assert {(item.path.stem, item.label) for item in items} == {
        (str(confirmed), 0),
        (str(relabelled), 1),
    }
    assert str(no_feedback) not in {item.path.stem for item in items}


def test_a_rerun_removes_erased_photos_and_follows_relabelling(
    client: TestClient,
    prediction: InsertPrediction,
    tmp_path: Path,
    database_url: str,
    db: psycopg.Connection,
) -> None:
    erased = prediction(result="cat", photo=jpeg())
    kept = prediction(result="cat", photo=jpeg())
    for one in (erased, kept):
        body = feedback_body(one, satisfaction="satisfied", true_label=None)
        assert client.post("/feedback", json=body).status_code == 201
    export_photos(database_url, tmp_path, progress=False)
    assert (tmp_path / "cat" / f"{erased}.jpg").exists()

    assert client.delete(f"/predictions/{erased}").status_code == 204
    relabel = feedback_body(kept, satisfaction="unsatisfied", true_label="dog")
    assert client.post("/feedback", json=relabel).status_code == 201
    summary = export_photos(database_url, tmp_path, progress=False)

    assert summary.removed == 2
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.*")) == [
        f"dog/{kept}.jpg"
    ]


def test_the_cli_exports_with_a_summary(tmp_path: Path, database_url: str) -> None:
    out = tmp_path / "train"
    result = subprocess.run(
        [sys.executable, "-m", "services.feedback.export_photos", str(out),
         "--database-url", database_url, "--quiet"],
        capture_output=True, text=True, cwd=REPO_ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "0 cat, 0 dog" in result.stdout
    assert (out / "cat").is_dir()
    assert (out / "dog").is_dir()


def test_a_split_export_has_the_train_and_val_layout_training_reads(
    client: TestClient, prediction: InsertPrediction, tmp_path: Path, database_url: str
) -> None:
    ids = [prediction(result="dog", photo=jpeg()) for _ in range(8)]
    for one in ids:
        body = feedback_body(one, satisfaction="satisfied", true_label=None)
        assert client.post("/feedback", json=body).status_code == 201

    summary = export_photos(database_url, tmp_path, val_fraction=0.5, progress=False)
    again = export_photos(database_url, tmp_path, val_fraction=0.5, progress=False)

    assert summary.written == 8
    assert again.unchanged == 8
    assert again.written == again.removed == 0
    for subset in ("train", "val"):
        assert {p.name for p in (tmp_path / subset).iterdir()} == {"cat", "dog"}
    for one in ids:
        subset = "val" if one.int % 10_000 < 5_000 else "train"
        assert (tmp_path / subset / "dog" / f"{one}.jpg").exists()
