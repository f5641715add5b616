"""Static INT8 quantisation of the exported model: `python -m ml.quantize --data DIR`.

Weights per channel in int8, activations in uint8 calibrated on training photos (QDQ format).
The two heads stay in float. Quantisation moves `pet_score`, so the quantised model gets its
own threshold by the same rule, and its own validation in its card.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from catdog.model import Classifier, ModelCard, card_path_for
from catdog.preprocessing import PreprocessSpec
from ml import non_pets
from ml.card import DEFAULT_MODEL, LABELS, NAME, VERSION
from ml.dataset import LabelledImage, list_labelled, load_tensor
from ml.evaluate import evaluate, neither_check
from ml.train import choose_pet_threshold, relative

logger = logging.getLogger(__name__)

DEFAULT_OUT = DEFAULT_MODEL.with_name(f"{NAME}_int8.onnx")
POOL_OPS = frozenset({"ReduceMean", "GlobalAveragePool"})


class PhotoReader(CalibrationDataReader):
    """Feeds calibration photos one at a time, preprocessed like the service does."""

    def __init__(self, items: Sequence[LabelledImage], spec: PreprocessSpec) -> None:
        self._items = iter(items)
        self._spec = spec

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next photo as a batch of one, or None when done."""
        item = next(self._items, None)
        return None if item is None else {"image": load_tensor(item.path, self._spec)[None]}


def head_nodes(model_path: Path) -> list[str]:
    """Every node fed, directly or not, by the global pool: heads, averaging, pet_score and
    pet_rank stay in float (quantising them saves nothing and moves the thresholds)."""
    graph = onnx.load(str(model_path)).graph
    tainted: set[str] = set()
    kept: list[str] = []
    for node in graph.node:  # ONNX graphs are stored in topological order
        if node.op_type in POOL_OPS or tainted.intersection(node.input):
            tainted.update(node.output)
            kept.append(node.name)
    return kept


def calibration_items(items: Sequence[LabelledImage], count: int, seed: int) -> list[LabelledImage]:
    """A fixed, class-balanced sample of the training photos."""
    rng = np.random.default_rng(seed)
    chosen: list[LabelledImage] = []
    for label in sorted({item.label for item in items}):
        pool = [item for item in items if item.label == label]
        picks = rng.choice(len(pool), size=min(count // 2, len(pool)), replace=False)
        chosen.extend(pool[index] for index in sorted(picks))
    return chosen


def quantize(model_path: Path, out_path: Path, calibration: Sequence[LabelledImage]) -> None:
    """Write the int8 QDQ model."""
    spec = ModelCard.load(card_path_for(model_path)).preprocessing
    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(model_path), str(prepared))
        quantize_static(
            str(prepared),
            str(out_path),
            PhotoReader(calibration, spec),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=head_nodes(prepared),
        )
    logger.info("wrote %s (%d bytes)", out_path, out_path.stat().st_size)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m ml.quantize",
        description="Quantise the float model to INT8, calibrated on training photos, and "
        "validate it like the float model; writes the .onnx and its card.",
    )
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
        help="a second such folder (default: $CV_EXTRA_DATASET_DIR, if set)",
    )
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="float model to quantise")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output ({DEFAULT_OUT})")
    parser.add_argument("--calibration", type=int, default=128, help="calibration photos (128)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the calibration sample")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    args = parser.parse_args(argv)
    if args.data is None:
        parser.error("give --data or set CV_DATASET_DIR")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Quantise, set the neither rule again, validate and write the card."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    roots = [path.resolve() for path in (args.data, args.extra_data) if path is not None]
    float_card = json.loads(card_path_for(args.model).read_text())
    labels = float_card["labels"]
    train_items = [item for root in roots for item in list_labelled(root / "train", labels)]
    calibration = calibration_items(train_items, args.calibration, args.seed)
    quantize(args.model, args.out, calibration)

    fields = {key: value for key, value in float_card.items() if key not in {"name", "version"}}
    fields.pop("sha256")
    fields["quantization"] = {
        "from": f"{args.model.name} (sha256 {float_card['sha256']})",
        "method": "onnxruntime static QDQ, int8 per-channel weights, uint8 activations, "
        "MinMax calibration; heads and pet_score in float",
        "calibration_photos": len(calibration),
        "calibration_seed": args.seed,
    }
    # A first card so that Classifier accepts the file; threshold and validation follow.
    ModelCard.write(args.out, fields, name=f"{NAME}_int8", version=f"{VERSION}-int8", labels=LABELS)
    classifier = Classifier(args.out, intra_op_threads=args.threads)
    training = evaluate(classifier, train_items)
    assert training.pet_score is not None
    assert training.pet_rank is not None
    fields["pet_threshold"] = choose_pet_threshold(training.pet_score, training.pet_rank)
    ModelCard.write(args.out, fields, name=f"{NAME}_int8", version=f"{VERSION}-int8", labels=LABELS)
    classifier = Classifier(args.out, intra_op_threads=args.threads)
    validation = {}
    for root in roots:
        name = f"{root.name}/val"
        evaluation = evaluate(classifier, list_labelled(root / "val", labels))
        figures = evaluation.summary()
        figures["float_model_accuracy"] = float_card["validation"][name]["accuracy"]
        figures["mistakes"] = [
            {**mistake, "path": relative(mistake["path"], roots)}
            for mistake in evaluation.worst_mistakes(20)
        ]
        validation[name] = figures
    fields["validation"] = validation
    fields["neither_check"] = neither_check(
        classifier, [*non_pets.packaged(), non_pets.featureless()]
    )
    ModelCard.write(args.out, fields, name=f"{NAME}_int8", version=f"{VERSION}-int8", labels=LABELS)
    print(f"model: {args.out}")
    print(f"pet_threshold: {fields['pet_threshold']} (float model: {float_card['pet_threshold']})")
    for name, figures in validation.items():
        print(
            f"{name}: accuracy {figures['accuracy']:.4f} (float model "
            f"{figures['float_model_accuracy']:.4f}), ECE "
            f"{figures['expected_calibration_error']:.4f}, "
            f"{figures['flagged_not_a_pet']} flagged as neither"
        )
    for name, figures in fields["neither_check"].items():
        print(f"  {name:16} {figures['flagged']:4}/{figures['images']:<4} flagged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
