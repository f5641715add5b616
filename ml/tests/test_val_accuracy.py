"""The committed model on the real validation photos of both data sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from catdog.model import Classifier, card_path_for
from ml.dataset import fingerprint, list_labelled
from ml.evaluate import Evaluation, evaluate
from ml.tests.conftest import dataset_folder

# (environment variable, card key, lowest accuracy, lowest per-class recall)
SETS = {
    "cats-dogs": ("CV_DATASET_DIR", "cats-dogs/val", 0.985, 0.975),
    "cats-dogs-extra": ("CV_EXTRA_DATASET_DIR", "cats-dogs-extra/val", 0.99, 0.99),
}
MAX_FLAGGED_SHARE = 0.01
MAX_ECE = 0.02

_evaluations: dict[str, Evaluation] = {}


@pytest.fixture(params=sorted(SETS))
def dataset(request: pytest.FixtureRequest, classifier: Classifier) -> tuple[str, Evaluation]:
    """One validation set, evaluated once per session."""
    name: str = request.param
    variable = SETS[name][0]
    folder = dataset_folder(variable, "val")
    if name not in _evaluations:
        _evaluations[name] = evaluate(classifier, list_labelled(folder, classifier.labels))
    return name, _evaluations[name]


def test_accuracy_and_recall_of_each_class(
    dataset: tuple[str, Evaluation], model_file: Path
) -> None:
    name, evaluation = dataset
    _, key, min_accuracy, min_recall = SETS[name]
    result = evaluation.summary()
    assert result["accuracy"] >= min_accuracy, evaluation.worst_mistakes(10)
    for label, figures in result["per_class"].items():
        assert figures["recall"] >= min_recall, label
    recorded = json.loads(card_path_for(model_file).read_text())["validation"][key]
    items_fingerprint = fingerprint(
        list_labelled(Path(evaluation.paths[0]).parents[1], evaluation.labels)
    )
    if items_fingerprint == recorded["data_sha256"]:
        # Same photos as at build time: the card's numbers must be reproducible.
        assert result["confusion_matrix"]["matrix"] == recorded["confusion_matrix"]["matrix"]
        assert result["flagged_not_a_pet"] == recorded["flagged_not_a_pet"]


def test_few_real_photos_are_flagged_as_neither(dataset: tuple[str, Evaluation]) -> None:
    _, evaluation = dataset
    flagged = [
        path for path, flag in zip(evaluation.paths, evaluation.not_a_pet, strict=True) if flag
    ]
    assert len(flagged) <= MAX_FLAGGED_SHARE * len(evaluation.paths), flagged


def test_probabilities_are_calibrated(dataset: tuple[str, Evaluation]) -> None:
    name, evaluation = dataset
    if len(evaluation.paths) < 500:
        pytest.skip(f"{name}: {len(evaluation.paths)} photos are too few to measure a 15-bin ECE")
    assert evaluation.reliability().ece <= MAX_ECE
