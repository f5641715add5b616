"""Evaluate an ONNX model and its card on a labelled folder: `python -m ml.evaluate MODEL DIR`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from catdog.calibration import Reliability, reliability
from catdog.images import ImageRejected
from catdog.model import Classifier, Scores
from catdog.preprocessing import preprocess
from ml.dataset import LabelledImage, list_labelled, load_tensor
from ml.metrics import summary
from ml.non_pets import PhotoSet

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Evaluation:
    """Per-image outputs of one model on one folder."""

    labels: tuple[str, ...]
    paths: tuple[str, ...]
    truth: np.ndarray  # [N]
    probabilities: np.ndarray  # [N, labels]
    pet_score: np.ndarray | None  # [N]
    pet_rank: np.ndarray | None  # [N]
    not_a_pet: np.ndarray  # [N] bool: the card's rule says neither cat nor dog
    rejected: tuple[str, ...]  # files the service would refuse

    @property
    def predicted(self) -> np.ndarray:
        """Most probable label per image."""
        return self.probabilities.argmax(axis=1)

    def summary(self) -> dict[str, Any]:
        """Accuracy, confusion matrix, per-class figures, calibration and the neither flag."""
        result = summary(self.truth, self.predicted, self.labels)
        result["expected_calibration_error"] = round(self.reliability().ece, 5)
        result["flagged_not_a_pet"] = int(self.not_a_pet.sum())
        return result

    def reliability(self) -> Reliability:
        """Confidence against accuracy, 15 bins (binary: the probability of label 1)."""
        return reliability(self.probabilities[:, 1], self.truth)

    def worst_mistakes(self, count: int) -> list[dict[str, Any]]:
        """Wrong predictions, most confident first."""
        wrong = np.flatnonzero(self.predicted != self.truth)
        confidence = self.probabilities[wrong, self.predicted[wrong]]
        order = wrong[np.argsort(-confidence, kind="stable")][:count]
        return [
            {
                "path": self.paths[row],
                "true": self.labels[self.truth[row]],
                "predicted": self.labels[self.predicted[row]],
                "probability": round(float(self.probabilities[row, self.predicted[row]]), 4),
            }
            for row in order
        ]


def evaluate(
    classifier: Classifier, items: Sequence[LabelledImage], batch_size: int = 8
) -> Evaluation:
    """Run `classifier` on every item, decoded and preprocessed as the service does."""
    spec = classifier.card.preprocessing
    kept: list[LabelledImage] = []
    rejected: list[str] = []
    results: list[Scores] = []
    with tqdm(total=len(items), desc="evaluating", unit="img", file=sys.stderr) as progress:
        for start in range(0, len(items), batch_size):
            tensors = []
            for item in items[start : start + batch_size]:
                try:
                    tensors.append(load_tensor(item.path, spec))
                    kept.append(item)
                except ImageRejected as error:
                    logger.warning("skipping %s: %s", item.path, error)
                    rejected.append(str(item.path))
            if tensors:
                results.append(classifier.run(np.stack(tensors)))
            progress.update(min(batch_size, len(items) - start))
    if not kept:
        raise ValueError("no image in the folder could be decoded")
    scores = concatenate(results)
    return Evaluation(
        labels=classifier.labels,
        paths=tuple(str(item.path) for item in kept),
        truth=np.array([item.label for item in kept], dtype=np.int64),
        probabilities=scores.probabilities,
        pet_score=scores.pet_score,
        pet_rank=scores.pet_rank,
        not_a_pet=~classifier.card.is_cat_or_dog(scores),
        rejected=tuple(rejected),
    )


def concatenate(parts: Sequence[Scores]) -> Scores:
    """Batches of scores as one."""

    def join(values: list[np.ndarray | None]) -> np.ndarray | None:
        present = [value for value in values if value is not None]
        return np.concatenate(present) if present and len(present) == len(values) else None

    probabilities = join([part.probabilities for part in parts])
    assert probabilities is not None
    return Scores(
        probabilities=probabilities,
        pet_score=join([part.pet_score for part in parts]),
        pet_rank=join([part.pet_rank for part in parts]),
        embedding=join([part.embedding for part in parts]),
    )


def score_images(
    classifier: Classifier, images: Sequence[Image.Image], batch_size: int = 8
) -> Scores:
    """Score decoded images (no label, no file) exactly as the service preprocesses them."""
    spec = classifier.card.preprocessing
    return concatenate(
        [
            classifier.run(
                np.stack([preprocess(image, spec) for image in images[start : start + batch_size]])
            )
            for start in range(0, len(images), batch_size)
        ]
    )


def neither_check(classifier: Classifier, photo_sets: Sequence[PhotoSet]) -> dict[str, Any]:
    """How many images of each set the card's rule flags as neither cat nor dog."""
    found: dict[str, Any] = {}
    for photo_set in photo_sets:
        scores = score_images(classifier, [image for _, image in photo_set.images])
        flags = ~classifier.card.is_cat_or_dog(scores)
        names = [name for name, _ in photo_set.images]
        found[photo_set.name] = {
            "description": photo_set.description,
            "images": len(names),
            "flagged": int(flags.sum()),
            "flagged_share": round(float(flags.mean()), 4),
            "missed": [name for name, flag in zip(names, flags, strict=True) if not flag][:20],
        }
    return found


def report(evaluation: Evaluation, worst: int) -> str:
    """The human-readable evaluation printed by the CLI."""
    result = evaluation.summary()
    labels = evaluation.labels
    width = max(len(label) for label in labels) + 2
    lines = [
        f"images: {result['images']}   accuracy: {result['accuracy']:.4f}",
        "",
        "confusion matrix (rows: true, columns: predicted)",
        " " * width + "".join(f"{label:>{width}}" for label in labels),
    ]
    for label, row in zip(labels, result["confusion_matrix"]["matrix"], strict=True):
        lines.append(f"{label:<{width}}" + "".join(f"{count:>{width}}" for count in row))
    lines += ["", f"{'label':<{width}}{'precision':>10}{'recall':>10}{'support':>10}"]
    for label, figures in result["per_class"].items():
        lines.append(
            f"{label:<{width}}{figures['precision']:>10.4f}{figures['recall']:>10.4f}"
            f"{figures['support']:>10}"
        )
    lines += [
        "",
        f"expected calibration error (15 bins): {result['expected_calibration_error']:.4f}",
    ]
    if evaluation.pet_score is not None:
        lines += [
            f"pet_score: min {evaluation.pet_score.min():.4f}, "
            f"median {np.median(evaluation.pet_score):.4f}; "
            f"{result['flagged_not_a_pet']} flagged as neither cat nor dog by the card's rule",
        ]
    if evaluation.rejected:
        lines += ["", f"rejected by load_image: {len(evaluation.rejected)} files"]
    mistakes = evaluation.worst_mistakes(worst)
    lines += ["", f"worst mistakes ({len(mistakes)} shown)"]
    lines += [
        f"  {item['probability']:.4f} {item['predicted']:<{width}} (true {item['true']}) "
        f"{item['path']}"
        for item in mistakes
    ] or ["  none"]
    return "\n".join(lines)


def draw_mistakes(mistakes: Sequence[dict[str, Any]], path: Path, tile: int = 220) -> None:
    """A contact sheet of mistaken photos, each captioned with its file and the answer."""
    from PIL import ImageDraw

    columns = min(5, max(1, len(mistakes)))
    rows = max(1, -(-len(mistakes) // columns))
    sheet = Image.new("RGB", (columns * tile, rows * (tile + 30)), "white")
    draw = ImageDraw.Draw(sheet)
    for index, mistake in enumerate(mistakes):
        with Image.open(mistake["path"]) as photo:
            thumbnail = photo.convert("RGB")
        thumbnail.thumbnail((tile, tile))
        left, top = (index % columns) * tile, (index // columns) * (tile + 30)
        sheet.paste(thumbnail, (left, top))
        caption = (
            f"{Path(mistake['path']).name}\n{mistake['predicted']} {mistake['probability']:.2f}"
        )
        draw.text((left + 3, top + tile + 2), caption, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m ml.evaluate",
        description="Evaluate an ONNX model (with its JSON card beside it) on a folder holding "
        "one subfolder of images per label, e.g. cat/ and dog/.",
    )
    parser.add_argument("model", type=Path, help="the .onnx file; its card is the same stem .json")
    parser.add_argument("folder", type=Path, help="folder with one subfolder per card label")
    parser.add_argument("--batch-size", type=int, default=8, help="images per run (default 8)")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    parser.add_argument("--worst", type=int, default=10, help="mistakes to list (default 10)")
    parser.add_argument("--json", type=Path, help="also write the summary as JSON to this file")
    parser.add_argument(
        "--mistakes-sheet",
        type=Path,
        help="also draw the worst mistakes, labelled, into this PNG (to look at, not to commit: "
        "the photos are the data set's)",
    )
    parser.add_argument(
        "--min-accuracy", type=float, help="exit with status 1 when accuracy is below this"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Evaluate and print; the exit status says whether --min-accuracy was met."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    classifier = Classifier(args.model, intra_op_threads=args.threads)
    items = list_labelled(args.folder, classifier.labels)
    evaluation = evaluate(classifier, items, args.batch_size)
    print(f"model: {args.model} ({classifier.card.name} {classifier.card.version})")
    print(f"folder: {args.folder}")
    print(report(evaluation, args.worst))
    result = evaluation.summary()
    if args.json:
        result["worst_mistakes"] = evaluation.worst_mistakes(args.worst)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.mistakes_sheet:
        draw_mistakes(evaluation.worst_mistakes(args.worst), args.mistakes_sheet)
        print(f"mistakes drawn in {args.mistakes_sheet}")
    if args.min_accuracy is not None and result["accuracy"] < args.min_accuracy:
        print(f"accuracy {result['accuracy']:.4f} is below {args.min_accuracy}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
