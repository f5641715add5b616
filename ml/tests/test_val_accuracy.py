"""The committed model on the real validation photos ($CV_DATASET_DIR/val)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ml.dataset import fingerprint, list_labelled
from ml.evaluate import evaluate
from services.inference.model import Classifier, card_path_for

MIN_ACCURACY = 0.985


def test_validation_accuracy(val_dir: Path, classifier: Classifier, model_file: Path) -> None:
    items = list_labelled(val_dir, classifier.labels)
    evaluation = evaluate(classifier, items)
    result = evaluation.summary()
    recorded = json.loads(card_path_for(model_file).read_text())["validation"]

    assert result["accuracy"] >= MIN_ACCURACY, evaluation.worst_mistakes(5)
    if fingerprint(items) == recorded["data_sha256"]:
        # Same photos as at build time: the card's numbers must be reproducible.
        assert result["confusion_matrix"]["matrix"] == recorded["confusion_matrix"]["matrix"]


def test_every_validation_photo_passes_the_pet_threshold(
    val_dir: Path, classifier: Classifier
) -> None:
    evaluation = evaluate(classifier, list_labelled(val_dir, classifier.labels))
    assert evaluation.pet_score is not None
    below = np.flatnonzero(evaluation.pet_score < classifier.card.pet_threshold)
    assert not below.size, [evaluation.paths[row] for row in below]
