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

from ml.card import DEFAULT_MODEL, NAME, VERSION, write_card
from ml.dataset import LabelledImage, fingerprint, list_labelled, load_tensor
from ml.evaluate import evaluate
from ml.train import choose_pet_threshold, relative
from services.inference.model import Classifier, ModelCard, card_path_for
from services.inference.preprocessing import PreprocessSpec

logger = logging.getLogger(__name__)

DEFAULT_OUT = DEFAULT_MODEL.with_name(f"{NAME}_int8.onnx")
HEAD_OPS = frozenset({"Gemm", "Softmax", "MatMul"})


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
    """Nodes after the global pool: the two heads and pet_score, kept in float."""
    graph = onnx.load(str(model_path)).graph
    return [node.name for node in graph.node if node.op_type in HEAD_OPS]


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
        description="Quantise the float model to INT8, calibrated on DATA/train, and validate it "
        "on DATA/val; writes the .onnx and its card.",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=os.environ.get("CV_DATASET_DIR"),
        help="folder with train/{cat,dog} and val/{cat,dog} (default: $CV_DATASET_DIR)",
    )
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="float model to quantise")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output ({DEFAULT_OUT})")
    parser.add_argument("--calibration", type=int, default=64, help="calibration photos (64)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the calibration sample")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    args = parser.parse_args(argv)
    if args.data is None:
        parser.error("give --data or set CV_DATASET_DIR")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Quantise, calibrate pet_threshold, validate and write the card."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    data: Path = args.data.resolve()
    float_card = json.loads(card_path_for(args.model).read_text())
    labels = float_card["labels"]
    train_items = list_labelled(data / "train", labels)
    val_items = list_labelled(data / "val", labels)
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
    write_card(args.out, fields, name=f"{NAME}_int8", version=f"{VERSION}-int8")
    classifier = Classifier(args.out, intra_op_threads=args.threads)
    train_scores = evaluate(classifier, train_items).pet_score
    assert train_scores is not None
    threshold = choose_pet_threshold(train_scores)
    evaluation = evaluate(classifier, val_items)
    assert evaluation.pet_score is not None
    validation = evaluation.summary()
    validation.update(
        {
            "data": float_card["validation"]["data"],
            "data_sha256": fingerprint(val_items),
            "worst_mistakes": [
                {**mistake, "path": relative(mistake["path"], data)}
                for mistake in evaluation.worst_mistakes(5)
            ],
            "float_model_accuracy": float_card["validation"]["accuracy"],
            "pet_score_min": round(float(evaluation.pet_score.min()), 4),
            "pet_score_below_threshold": int((evaluation.pet_score < threshold).sum()),
        }
    )
    fields["pet_threshold"] = threshold
    fields["pet_threshold_choice"] = {
        "rule": float_card["pet_threshold_choice"]["rule"],
        "train_min": round(float(train_scores.min()), 4),
        "val_min": validation["pet_score_min"],
    }
    fields["validation"] = validation
    write_card(args.out, fields, name=f"{NAME}_int8", version=f"{VERSION}-int8")
    print(f"model: {args.out}")
    float_accuracy = float_card["validation"]["accuracy"]
    print(f"validation accuracy: {validation['accuracy']:.4f} (float model: {float_accuracy})")
    print(f"confusion matrix: {validation['confusion_matrix']['matrix']}")
    print(f"pet_threshold: {threshold} (val min {validation['pet_score_min']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
