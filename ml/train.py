"""Build the cat/dog model from scratch: `python -m ml.train --data DIR`.

Extracts EfficientNet-Lite0 features of `DIR/train/{cat,dog}`, fits a logistic-regression head
with a cross-validated penalty, exports one ONNX graph, evaluates it on `DIR/val/{cat,dog}`
through the service's own code, and writes the model card.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ml import imagenet
from ml.card import DEFAULT_MODEL, LABELS, SPEC, source_weights, write_card
from ml.dataset import fingerprint, list_labelled

logger = logging.getLogger(__name__)

L2_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
# The threshold sits at this share of the lowest training-photo pet_score, so photos a bit
# harder than any seen in training still pass.
PET_THRESHOLD_MARGIN = 0.8


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m ml.train",
        description="Train the cat/dog head on DATA/train, export ONNX, validate on DATA/val "
        "and write the model card. Needs requirements/model.txt installed.",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=os.environ.get("CV_DATASET_DIR"),
        help="folder with train/{cat,dog} and val/{cat,dog} (default: $CV_DATASET_DIR)",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_MODEL, help=f"ONNX file to write ({DEFAULT_MODEL})"
    )
    parser.add_argument("--cache-dir", type=Path, help="reuse backbone features cached here")
    parser.add_argument("--seed", type=int, default=0, help="seed of the cross-validation folds")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds (5)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (2)")
    args = parser.parse_args(argv)
    if args.data is None:
        parser.error("give --data or set CV_DATASET_DIR")
    return args


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


def choose_pet_threshold(train_pet_scores: np.ndarray) -> float:
    """A round threshold below every training photo's score, with margin."""
    return math.floor(PET_THRESHOLD_MARGIN * float(train_pet_scores.min()) * 100) / 100


def relative(path: str, root: Path) -> str:
    """Dataset paths in the card without the machine-specific prefix."""
    return str(Path(path).relative_to(root))


def train(args: argparse.Namespace) -> dict[str, Any]:
    """The whole build; returns the card's contents."""
    import torch

    from ml import synthetic
    from ml.backbone import (
        CatDogNet,
        PooledFeatures,
        imagenet_fc,
        load_pretrained,
        weights_path,
    )
    from ml.evaluate import evaluate
    from ml.export import export_classifier, head_layer
    from ml.features import extract
    from ml.head import choose_l2, fit
    from ml.metrics import accuracy
    from services.inference.model import Classifier
    from services.inference.preprocessing import preprocess

    make_deterministic(args.seed, args.threads)
    data: Path = args.data.resolve()
    train_items = list_labelled(data / "train", LABELS)
    val_items = list_labelled(data / "val", LABELS)

    backbone = load_pretrained()
    features = PooledFeatures(backbone).eval()
    fc = imagenet_fc(backbone)

    def features_of(items: Sequence[Any], flip: bool = False) -> Any:
        return extract(items, SPEC, features, fc, flip=flip, cache_dir=args.cache_dir)

    train_plain = features_of(train_items)
    train_flipped = features_of(train_items, flip=True)
    val = features_of(val_items)
    labels = train_plain.labels

    l2, cross_validation = choose_l2(
        [train_plain.features, train_flipped.features], labels, L2_GRID, args.folds, args.seed
    )
    head = fit(
        np.concatenate([train_plain.features, train_flipped.features]),
        np.concatenate([labels, labels]),
        l2,
    )
    torch_val_accuracy = accuracy(val.labels, head.predict(val.features))
    logger.info("l2=%g, validation accuracy of the fitted head %.4f", l2, torch_val_accuracy)

    baseline_predictions, train_pet = class_sum_predictions(train_plain.imagenet_logits)
    val_baseline, _ = class_sum_predictions(val.imagenet_logits)
    pet_threshold = choose_pet_threshold(train_pet)

    net = CatDogNet(backbone, head_layer(head)).eval()
    export_classifier(net, args.out, SPEC.crop)

    fields: dict[str, Any] = {
        "description": "Tells whether a photo shows a cat or a dog, and how much it looks like "
        "either at all (pet_score).",
        "input_size": [3, SPEC.crop, SPEC.crop],
        "inputs": {"image": {"dtype": "float32", "shape": ["N", 3, SPEC.crop, SPEC.crop]}},
        "outputs": {
            "probabilities": {
                "dtype": "float32",
                "shape": ["N", len(LABELS)],
                "meaning": "softmax over labels, in the order of `labels`",
            },
            "pet_score": {
                "dtype": "float32",
                "shape": ["N"],
                "meaning": "ImageNet-1k probability mass on the house-cat classes "
                f"{imagenet.CAT_CLASSES.start}-{imagenet.CAT_CLASSES.stop - 1} and the dog "
                f"breeds {imagenet.DOG_CLASSES.start}-{imagenet.DOG_CLASSES.stop - 1}",
            },
        },
        "preprocessing": SPEC.to_dict(),
        "pet_threshold": pet_threshold,
        "source_weights": source_weights(weights_path()),
        "training": {
            "data": "Real photos of cats and dogs from the Kaggle 'Dogs vs. Cats' set "
            "(Asirra: Microsoft Research and Petfinder.com): "
            f"{int((labels == 0).sum())} cats and {int((labels == 1).sum())} dogs, "
            "read from $CV_DATASET_DIR/train",
            "data_sha256": fingerprint(train_items),
            "backbone": "frozen; features are the 1280-d global average pool",
            "augmentation": "horizontal flip (both views of every photo are fitted)",
            "head": "L2-regularised logistic regression (Newton's method), exported as a "
            "2-logit linear layer and softmax",
            "l2": l2,
            "cross_validation": {
                "folds": args.folds,
                "seed": args.seed,
                "chosen_by": "lowest held-out log-loss",
                "results": [
                    {
                        "l2": result.l2,
                        "accuracy": round(result.accuracy, 4),
                        "log_loss": round(result.log_loss, 5),
                    }
                    for result in cross_validation
                ],
            },
            "train_accuracy": round(accuracy(labels, head.predict(train_plain.features)), 4),
            "imagenet_class_sum_train_accuracy": round(accuracy(labels, baseline_predictions), 4),
            "torch": torch.__version__,
        },
        "pet_threshold_choice": {
            "rule": f"{PET_THRESHOLD_MARGIN} x the lowest training-photo pet_score, "
            "rounded down to 0.01",
            "train_min": round(float(train_pet.min()), 4),
        },
    }
    write_card(args.out, fields)

    # Validate the exported file exactly as the service will load and feed it.
    classifier = Classifier(args.out, intra_op_threads=args.threads)
    evaluation = evaluate(classifier, val_items)
    validation = evaluation.summary()
    assert evaluation.pet_score is not None
    validation.update(
        {
            "data": f"{len(val_items)} photos from $CV_DATASET_DIR/val, never used in training",
            "data_sha256": fingerprint(val_items),
            "worst_mistakes": [
                {**mistake, "path": relative(mistake["path"], data)}
                for mistake in evaluation.worst_mistakes(5)
            ],
            "imagenet_class_sum_baseline_accuracy": round(accuracy(val.labels, val_baseline), 6),
            "pet_score_min": round(float(evaluation.pet_score.min()), 4),
            "pet_score_below_threshold": int((evaluation.pet_score < pet_threshold).sum()),
        }
    )
    synthetic_scores = {}
    for name, image in synthetic.all_images().items():
        scores = classifier.run(preprocess(image, SPEC)[None])
        assert scores.pet_score is not None
        synthetic_scores[name] = round(float(scores.pet_score[0]), 4)
    fields["validation"] = validation
    fields["pet_threshold_choice"].update(
        {
            "val_min": validation["pet_score_min"],
            "synthetic_non_pet_scores": synthetic_scores,
            "synthetic_flagged": sorted(
                name for name, score in synthetic_scores.items() if score < pet_threshold
            ),
        }
    )
    # The card's sha256 is of the ONNX file, which is unchanged: rewriting keeps it valid.
    write_card(args.out, fields)
    logger.info(
        "torch head %.4f vs exported model %.4f on validation",
        torch_val_accuracy,
        validation["accuracy"],
    )
    return fields


def main(argv: Sequence[str] | None = None) -> int:
    """Build, export, validate and print the headline numbers."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    fields = train(args)
    validation = fields["validation"]
    print(f"model: {args.out}")
    print(f"validation accuracy: {validation['accuracy']:.4f} on {validation['images']} photos")
    print(f"confusion matrix (rows true, columns predicted; {', '.join(LABELS)}):")
    for label, row in zip(LABELS, validation["confusion_matrix"]["matrix"], strict=True):
        print(f"  {label}: {row}")
    print(
        "ImageNet class-sum baseline accuracy: "
        f"{validation['imagenet_class_sum_baseline_accuracy']:.4f}"
    )
    print(f"pet_threshold: {fields['pet_threshold']} (val min {validation['pet_score_min']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
