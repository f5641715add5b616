"""Metrics and the CLIs' contracts (help text, evaluation output) without real photos."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from catdog.model import not_cat_or_dog
from ml import synthetic
from ml.evaluate import main as evaluate_main
from ml.metrics import confusion_matrix, per_class, summary
from ml.tests.conftest import REPO_ROOT
from ml.train import PET_FLAG_BUDGET, PET_RANK_LIMIT, choose_pet_threshold, class_sum_predictions


def test_confusion_matrix_and_per_class_figures() -> None:
    truth = np.array([0, 0, 0, 1, 1])
    predicted = np.array([0, 0, 1, 1, 1])
    matrix = confusion_matrix(truth, predicted, 2)
    assert matrix.tolist() == [[2, 1], [0, 2]]
    figures = per_class(matrix, ["cat", "dog"])
    assert figures["cat"] == {"precision": 1.0, "recall": pytest.approx(2 / 3), "support": 3}
    assert figures["dog"]["precision"] == pytest.approx(2 / 3)
    assert summary(truth, predicted, ["cat", "dog"])["accuracy"] == 0.8


def test_class_sum_baseline_and_pet_score() -> None:
    logits = np.full((2, 1000), -10.0)
    logits[0, 281] = 10.0  # tabby
    logits[1, 207] = 10.0  # golden retriever
    predictions, pet = class_sum_predictions(logits)
    assert predictions.tolist() == [0, 1]
    assert np.all(pet > 0.99)


def test_pet_threshold_flags_at_most_the_budget_of_training_photos() -> None:
    rng = np.random.default_rng(0)
    scores = rng.uniform(0.3, 1.0, 1000)
    scores[:8] = [0.02, 0.04, 0.06, 0.08, 0.11, 0.13, 0.17, 0.19]
    ranks = np.zeros(1000, dtype=np.int64)
    ranks[:8] = PET_RANK_LIMIT
    ranks[4] = PET_RANK_LIMIT - 1  # a cat or dog class in the top five: never flagged

    threshold = choose_pet_threshold(scores, ranks)

    def flagged(limit: float) -> float:
        return float(not_cat_or_dog(scores, ranks, limit, PET_RANK_LIMIT).mean())

    assert flagged(threshold) <= PET_FLAG_BUDGET < flagged(threshold + 0.01)
    assert threshold == 0.17


@pytest.mark.parametrize("module", ["ml.train", "ml.evaluate", "ml.bench_model", "ml.quantize"])
def test_every_cli_has_help(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout


def test_evaluate_cli_on_a_labelled_folder(
    model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
    synthetic.noise_rgb().save(tmp_path / "cat" / "noise.png")
    synthetic.checkerboard().save(tmp_path / "cat" / "board.jpg")
    Image.new("RGB", (50, 80), (90, 60, 30)).save(tmp_path / "dog" / "brown.bmp")
    (tmp_path / "dog" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    summary_file = tmp_path / "summary.json"
    sheet = tmp_path / "mistakes.png"

    status = evaluate_main(
        [
            str(model_file),
            str(tmp_path),
            "--json",
            str(summary_file),
            "--mistakes-sheet",
            str(sheet),
        ]
    )

    printed = capsys.readouterr().out
    assert status == 0
    for heading in ("accuracy:", "confusion matrix", "precision", "worst mistakes", "pet_score"):
        assert heading in printed
    assert "rejected by load_image: 1" in printed
    result = json.loads(summary_file.read_text())
    assert result["images"] == 3
    assert np.asarray(result["confusion_matrix"]["matrix"]).sum() == 3


def test_evaluate_cli_fails_below_min_accuracy(model_file: Path, tmp_path: Path) -> None:
    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        synthetic.stripes().save(tmp_path / label / "stripes.png")
    # Both folders hold the same image: one of the two is always wrong.
    sheet = tmp_path / "mistakes.png"
    arguments = [str(model_file), str(tmp_path), "--min-accuracy", "0.9"]
    assert evaluate_main([*arguments, "--mistakes-sheet", str(sheet)]) == 1
    with Image.open(sheet) as drawn:
        assert drawn.size == (220, 250)  # the one mistake, captioned
        darkest, lightest = drawn.convert("L").crop((0, 0, 220, 220)).getextrema()
        assert lightest - darkest > 100  # the photo itself above its caption, not blank


def test_evaluate_cli_needs_one_folder_per_label(model_file: Path, tmp_path: Path) -> None:
    (tmp_path / "cat").mkdir()
    synthetic.stripes().save(tmp_path / "cat" / "stripes.png")
    with pytest.raises(FileNotFoundError, match="dog is missing"):
        evaluate_main([str(model_file), str(tmp_path)])
