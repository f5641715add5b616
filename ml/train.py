"""Build the cat/dog model from scratch: `python -m ml.train --data DIR [--extra-data DIR]`.

Extracts EfficientNet-Lite2 features of every `train/{cat,dog}` photo and its mirror image,
fits a logistic-regression head with a cross-validated penalty, calibrates it with a
temperature fitted on the held-out folds, sets the neither-cat-nor-dog rule from the training
photos alone, exports one ONNX graph, evaluates it on each `val/{cat,dog}` and on real non-pet
photos through the service's own code, and writes the model card.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from catdog.model import Classifier, ModelCard, not_cat_or_dog
from ml import imagenet
from ml.card import DEFAULT_MODEL, LABELS, NAME, SPEC, VERSION, source_weights
from ml.dataset import LabelledImage, fingerprint, list_labelled
from ml.sources import TrainingSource, base_source

if TYPE_CHECKING:
    from catdog.calibration import Reliability
    from ml.evaluate import Evaluation

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
RELIABILITY_PLOT = REPO_ROOT / "docs" / "img" / "reliability.png"
L2_GRID = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
# "Neither" needs both signs: no cat or dog among ImageNet's top five classes (the usual
# top-5 criterion), and a cat+dog mass under a threshold that flags at most this share of
# the training photos (every one a cat or a dog).
PET_RANK_LIMIT = 5
PET_FLAG_BUDGET = 0.005
PET_THRESHOLD_STEP = 0.01


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m ml.train",
        description="Train the cat/dog head on the train/ folders, calibrate it, export ONNX, "
        "validate on each val/ folder and on real non-pet photos, and write the model card. "
        "Needs requirements/model.txt installed.",
    )
    add_data_options(parser)
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_MODEL, help=f"ONNX file to write ({DEFAULT_MODEL})"
    )
    parser.add_argument(
        "--imagenet-samples",
        type=Path,
        help="folder of one photo per ImageNet class, measured as non-pets (see ml.non_pets)",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        default=RELIABILITY_PLOT,
        help=f"reliability diagram to write ({RELIABILITY_PLOT.relative_to(REPO_ROOT)})",
    )
    add_training_options(parser)
    args = parser.parse_args(argv)
    if args.data is None:
        parser.error("give --data or set CV_DATASET_DIR")
    return args


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """--data and --extra-data: the dataset folders."""
    parser.add_argument(
        "--data",
        type=Path,
        default=os.environ.get("CV_DATASET_DIR"),
        help="folder with train/{cat,dog} and val/{cat,dog} (default: $CV_DATASET_DIR)",
    )
    parser.add_argument(
        "--extra-data",
        type=Path,
        default=os.environ.get("CV_EXTRA_DATASET_DIR"),
        help="a second such folder, trained on and validated on too "
        "(default: $CV_EXTRA_DATASET_DIR, if set)",
    )


def add_training_options(parser: argparse.ArgumentParser, cache_dir: Path | None = None) -> None:
    """How the head is fitted: the same options wherever a model is trained."""
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=cache_dir,
        help="reuse backbone features cached here"
        + (f" (default: {cache_dir})" if cache_dir else ""),
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the cross-validation folds")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds (5)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (2)")
    parser.add_argument(
        "--l2",
        type=float,
        action="append",
        help="penalty to cross-validate, repeatable (default: "
        + " ".join(f"{value:g}" for value in L2_GRID)
        + ")",
    )


@dataclass(frozen=True)
class TrainingOptions:
    """The options of `add_training_options`."""

    cache_dir: Path | None
    seed: int
    folds: int
    threads: int
    l2_grid: tuple[float, ...]

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TrainingOptions:
        """From parsed command-line options."""
        return cls(args.cache_dir, args.seed, args.folds, args.threads, tuple(args.l2 or L2_GRID))


def dataset_roots(data: Path, extra_data: Path | None) -> list[Path]:
    """The dataset folders, resolved."""
    return [data.resolve()] + ([extra_data.resolve()] if extra_data is not None else [])


def make_deterministic(seed: int, threads: int) -> None:
    """Same inputs, same model: fixed seeds, thread count and deterministic kernels."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


def class_sum_predictions(imagenet_logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Baseline without training: dog when ImageNet's dog classes outweigh its cat classes.

    Also returns the pet score, the two masses added.
    """
    cat, dog = imagenet.class_sums(imagenet_logits)
    return (dog > cat).astype(np.int64), cat + dog


def choose_pet_threshold(pet_score: np.ndarray, pet_rank: np.ndarray) -> float:
    """The highest round threshold that flags at most PET_FLAG_BUDGET of the training photos."""
    threshold = 0.0
    for step in range(1, int(1 / PET_THRESHOLD_STEP)):
        candidate = round(step * PET_THRESHOLD_STEP, 4)
        if not_cat_or_dog(pet_score, pet_rank, candidate, PET_RANK_LIMIT).mean() > PET_FLAG_BUDGET:
            break
        threshold = candidate
    return threshold


def relative(path: str, roots: Sequence[Path]) -> str:
    """Dataset paths in the card without the machine-specific prefix: `<dataset>/<rest>`."""
    for root in roots:
        if Path(path).is_relative_to(root):
            return f"{root.name}/{Path(path).relative_to(root)}"
    return Path(path).name


KAGGLE_DATA = (
    "Real photos of cats and dogs from the Kaggle 'Dogs vs. Cats' set "
    "(Asirra: Microsoft Research and Petfinder.com)"
)


@dataclass(frozen=True)
class FittedModel:
    """An exported model and its card's contents before validation."""

    fields: dict[str, Any]
    temperature: float
    curves: dict[str, Reliability]


def fit_model(
    sources: Sequence[TrainingSource],
    out: Path,
    options: TrainingOptions,
    data: str = KAGGLE_DATA,
) -> FittedModel:
    """Features, head, calibration, neither threshold and ONNX export of `out`.

    The card is not written: its version and validation are the caller's.
    """
    import torch

    from catdog.calibration import reliability
    from ml.backbone import (
        ARCHITECTURE,
        FEATURES,
        SECOND_ARCHITECTURE,
        CatDogNet,
        FeaturesAndLogits,
        load_backbones,
        weights_path,
    )
    from ml.calibration import fit_temperature, log_loss, sigmoid
    from ml.export import export_classifier, export_features, head_layer
    from ml.features import FeatureSet, extract
    from ml.head import choose_l2, fit
    from ml.metrics import accuracy

    make_deterministic(options.seed, options.threads)
    first, second = load_backbones()
    with tempfile.TemporaryDirectory() as scratch:
        backbone_onnx = Path(scratch) / "backbone.onnx"
        export_features(FeaturesAndLogits(first, second).eval(), backbone_onnx, SPEC.crop)
        training = FeatureSet.concatenate(
            [
                extract(
                    source.items,
                    SPEC,
                    backbone_onnx,
                    threads=options.threads,
                    cache_dir=options.cache_dir if source.cacheable else None,
                    description=f"features {source.folder}",
                )
                for source in sources
                if source.items
            ]
        )
    labels = training.labels
    views = [training.features, training.flipped_features]

    best, cross_validation = choose_l2(views, labels, options.l2_grid, options.folds, options.seed)
    temperature = fit_temperature(best.held_out, labels)
    held_out_before = reliability(sigmoid(best.held_out), labels)
    held_out_after = reliability(sigmoid(best.held_out / temperature), labels)
    logger.info(
        "l2=%g: held-out accuracy %.4f, temperature %.3f, held-out ECE %.4f -> %.4f",
        best.l2,
        best.accuracy,
        temperature,
        held_out_before.ece,
        held_out_after.ece,
    )
    head = fit(np.concatenate(views), np.concatenate([labels, labels]), best.l2)

    train_pet, train_rank = imagenet.pet_score_and_rank(imagenet.softmax(training.imagenet_logits))
    pet_threshold = choose_pet_threshold(train_pet, train_rank)
    baseline_predictions, _ = class_sum_predictions(training.imagenet_logits)

    net = CatDogNet(first, second, head_layer(head, temperature)).eval()
    export_classifier(net, out, SPEC.crop)

    fields: dict[str, Any] = {
        "description": "Tells whether a photo shows a cat or a dog, with calibrated "
        "probabilities, and whether it shows either at all.",
        "input_size": [3, SPEC.crop, SPEC.crop],
        "inputs": {"image": {"dtype": "float32", "shape": ["N", 3, SPEC.crop, SPEC.crop]}},
        "outputs": {
            "probabilities": {
                "dtype": "float32",
                "shape": ["N", len(LABELS)],
                "meaning": "calibrated softmax over labels, in the order of `labels`: the "
                "head's logits divided by the calibration temperature",
            },
            "pet_score": {
                "dtype": "float32",
                "shape": ["N"],
                "meaning": "ImageNet-1k probability mass on the house-cat classes "
                f"{imagenet.CAT_CLASSES.start}-{imagenet.CAT_CLASSES.stop - 1} and the dog "
                f"breeds {imagenet.DOG_CLASSES.start}-{imagenet.DOG_CLASSES.stop - 1} "
                "(EfficientNet-Lite2's ImageNet head)",
            },
            "pet_rank": {
                "dtype": "int64",
                "shape": ["N"],
                "meaning": "how many other ImageNet classes score above the best cat or dog "
                "class (0: a cat or dog class is the top one)",
            },
            "embedding": {
                "dtype": "float32",
                "shape": ["N", FEATURES],
                "meaning": "EfficientNet-Lite2's globally pooled features of the photo as "
                "given, for drift monitoring",
            },
        },
        "preprocessing": SPEC.to_dict(),
        "pet_threshold": pet_threshold,
        "pet_rank_limit": PET_RANK_LIMIT,
        "neither_rule": (
            f"not a cat or a dog when pet_score < pet_threshold ({pet_threshold}) and "
            f"pet_rank >= pet_rank_limit ({PET_RANK_LIMIT}): little ImageNet mass on cats "
            "and dogs and none of their classes among the top five"
        ),
        "source_weights": [
            source_weights("Lite2", weights_path(ARCHITECTURE)),
            source_weights("Lite1", weights_path(SECOND_ARCHITECTURE)),
        ],
        "training": {
            "data": data,
            "sources": [source.describe() for source in sources],
            "photos": len(labels),
            "backbone": "both frozen; the head reads EfficientNet-Lite2's 1280-d global "
            "average pool of the 260 x 260 crop beside EfficientNet-Lite1's of the same crop "
            "resized to 240 x 240 (bilinear) in the graph",
            "augmentation": "horizontal flip (both views of every photo are fitted)",
            "head": "L2-regularised logistic regression (Newton's method), exported as a "
            "2-logit linear layer and softmax",
            "l2": best.l2,
            "cross_validation": {
                "folds": options.folds,
                "seed": options.seed,
                "chosen_by": "lowest held-out log-loss",
                "results": [
                    {
                        "l2": result.l2,
                        "accuracy": round(result.accuracy, 5),
                        "errors": round((1 - result.accuracy) * len(labels)),
                        "log_loss": round(result.log_loss, 5),
                    }
                    for result in cross_validation
                ],
            },
            "train_accuracy": round(accuracy(labels, head.predict(views[0])), 5),
            "imagenet_class_sum_train_accuracy": round(accuracy(labels, baseline_predictions), 5),
            "torch": torch.__version__,
        },
        "calibration": {
            "method": "temperature scaling (Guo et al., 2017): log-odds divided by T, T "
            "fitted by log-loss on the held-out cross-validation log-odds of the chosen "
            "penalty, never on the photos a head was trained on; folded into the head",
            "temperature": round(temperature, 5),
            "held_out_log_loss": {
                "before": round(log_loss(best.held_out, labels), 5),
                "after": round(log_loss(best.held_out / temperature, labels), 5),
            },
            "held_out_ece_15_bins": {
                "before": round(held_out_before.ece, 5),
                "after": round(held_out_after.ece, 5),
            },
        },
        "pet_threshold_choice": {
            "rule": f"the highest multiple of {PET_THRESHOLD_STEP} for which the neither rule "
            f"flags at most {PET_FLAG_BUDGET:.1%} of the {len(labels)} training photos",
            "train_flagged": int(
                not_cat_or_dog(train_pet, train_rank, pet_threshold, PET_RANK_LIMIT).sum()
            ),
            "train_pet_score_min": round(float(train_pet.min()), 4),
        },
    }
    curves = {"held-out folds, raw": held_out_before, "held-out folds, calibrated": held_out_after}
    return FittedModel(fields, temperature, curves)


@dataclass(frozen=True)
class Validation:
    """Each validation set's figures for the card, and the per-photo outputs behind them."""

    figures: dict[str, Any]
    evaluations: dict[str, Evaluation]


def validate(
    classifier: Classifier,
    val_sets: Mapping[str, Sequence[LabelledImage]],
    roots: Sequence[Path],
    temperature: float,
) -> Validation:
    """Evaluate the exported file exactly as the service will load and feed it."""
    from catdog.calibration import reliability
    from ml.calibration import sigmoid
    from ml.evaluate import evaluate

    figures_by_set: dict[str, Any] = {}
    evaluations: dict[str, Evaluation] = {}
    for name, items in val_sets.items():
        evaluation = evaluate(classifier, items)
        figures = evaluation.summary()
        # The graph's log-odds times T are the head's before calibration.
        log_probabilities = np.log(np.clip(evaluation.probabilities.astype(np.float64), 1e-12, 1))
        log_odds = log_probabilities[:, 1] - log_probabilities[:, 0]
        raw_ece = reliability(sigmoid(temperature * log_odds), evaluation.truth).ece
        figures.update(
            {
                "data": f"{len(items)} photos from {name}, never used in training or to "
                "choose anything",
                "data_sha256": fingerprint(items),
                "expected_calibration_error_uncalibrated": round(raw_ece, 5),
                "mistakes": [
                    {**mistake, "path": relative(mistake["path"], roots)}
                    for mistake in evaluation.worst_mistakes(20)
                ],
                "flagged_paths": [
                    relative(evaluation.paths[row], roots)
                    for row in np.flatnonzero(evaluation.not_a_pet)
                ],
            }
        )
        figures_by_set[name] = figures
        evaluations[name] = evaluation
    return Validation(figures_by_set, evaluations)


def neither_figures(classifier: Classifier, imagenet_samples: Path | None = None) -> dict[str, Any]:
    """The neither rule on real non-pet photos and featureless images."""
    from ml import non_pets
    from ml.evaluate import neither_check

    photo_sets = [*non_pets.packaged(), non_pets.featureless()]
    if imagenet_samples is not None:
        photo_sets.extend(non_pets.imagenet_samples(imagenet_samples).values())
    return neither_check(classifier, photo_sets)


def train(args: argparse.Namespace) -> dict[str, Any]:
    """The whole build; returns the card's contents."""
    from ml.calibration import plot_reliability
    from ml.reference import write_reference

    roots = dataset_roots(args.data, args.extra_data)
    sources = [base_source(root) for root in roots]
    val_sets = {f"{root.name}/val": list_labelled(root / "val", LABELS) for root in roots}
    fitted = fit_model(sources, args.out, TrainingOptions.from_args(args))
    fields = fitted.fields
    ModelCard.write(args.out, fields, name=NAME, version=VERSION, labels=LABELS)

    classifier = Classifier(args.out, intra_op_threads=args.threads)
    validation = validate(classifier, val_sets, roots, fitted.temperature)
    curves = dict(fitted.curves)
    for name, evaluation in validation.evaluations.items():
        curves[f"{name}, calibrated"] = evaluation.reliability()
    plot_reliability(curves, args.plot, f"{classifier.card.name} {classifier.card.version}")
    fields["validation"] = validation.figures
    fields["neither_check"] = neither_figures(classifier, args.imagenet_samples)
    fields["drift_reference"] = write_reference(
        classifier, [item for source in sources for item in source.items], seed=args.seed
    )
    # The card's sha256 is of the ONNX file, which is unchanged: rewriting keeps it valid.
    ModelCard.write(args.out, fields, name=NAME, version=VERSION, labels=LABELS)
    return fields


def main(argv: Sequence[str] | None = None) -> int:
    """Build, export, validate and print the headline numbers."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    fields = train(args)
    print(f"model: {args.out}")
    calibration = fields["calibration"]
    print(
        f"temperature {calibration['temperature']}; held-out ECE "
        f"{calibration['held_out_ece_15_bins']['before']} -> "
        f"{calibration['held_out_ece_15_bins']['after']}"
    )
    for name, figures in fields["validation"].items():
        recall = ", ".join(
            f"{label} recall {values['recall']:.4f}"
            for label, values in figures["per_class"].items()
        )
        print(
            f"{name}: accuracy {figures['accuracy']:.4f} on {figures['images']} photos "
            f"({recall}); ECE {figures['expected_calibration_error']:.4f}; "
            f"{figures['flagged_not_a_pet']} flagged as neither"
        )
    print(f"neither rule: {fields['neither_rule']}")
    for name, figures in fields["neither_check"].items():
        print(f"  {name:16} {figures['flagged']:4}/{figures['images']:<4} flagged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
