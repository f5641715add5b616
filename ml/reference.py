"""The drift reference of a model: embeddings of its own training photos, stored beside it.

The inference service tests each window of live embeddings against this sample. It is
computed by the exported ONNX file itself, so it holds exactly the numbers the service
compares with, and it is named in the card with its sha256.

`python -m ml.reference MODEL --data DIR [--extra-data DIR]` adds one to a built model.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from catdog.model import Classifier, ModelCard, file_sha256, reference_path_for
from ml.card import LABELS
from ml.dataset import LabelledImage, list_labelled, load_tensor

logger = logging.getLogger(__name__)

REFERENCE_ROWS = 1000


def embed(
    classifier: Classifier, items: Sequence[LabelledImage], batch_size: int = 8
) -> np.ndarray:
    """The model's `embedding` output for each photo, decoded as the service decodes uploads."""
    spec = classifier.card.preprocessing
    rows = []
    with tqdm(total=len(items), desc="reference embeddings", unit="img", file=sys.stderr) as bar:
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            scores = classifier.run(np.stack([load_tensor(item.path, spec) for item in chunk]))
            if scores.embedding is None:
                raise ValueError(f"{classifier.model_path} has no 'embedding' output")
            rows.append(scores.embedding)
            bar.update(len(chunk))
    return np.concatenate(rows)


def write_reference(
    classifier: Classifier,
    items: Sequence[LabelledImage],
    *,
    rows: int = REFERENCE_ROWS,
    seed: int = 0,
) -> dict[str, Any]:
    """Embed a seeded sample of `items`, save it beside the model (float16) and return the
    card's `drift_reference` field."""
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(items), size=min(rows, len(items)), replace=False))
    sample = [items[index] for index in chosen]
    embeddings = embed(classifier, sample).astype(np.float16)
    path = reference_path_for(classifier.model_path)
    with path.open("wb") as handle:
        np.save(handle, embeddings, allow_pickle=False)
    labels = np.array([item.label for item in sample])
    logger.info("wrote %s (%d rows)", path, len(embeddings))
    return {
        "file": path.name,
        "sha256": file_sha256(path),
        "rows": int(embeddings.shape[0]),
        "dims": int(embeddings.shape[1]),
        "dtype": "float16",
        "per_class": {label: int((labels == index).sum()) for index, label in enumerate(LABELS)},
        "sample": f"{len(sample)} of the {len(items)} training photos, drawn with seed {seed}",
    }


def add_reference(model_path: Path, folders: Sequence[Path], *, rows: int, seed: int) -> Path:
    """Write the reference of an existing model and name it in its card."""
    classifier = Classifier(model_path)
    items = [item for folder in folders for item in list_labelled(folder, LABELS)]
    field = write_reference(classifier, items, rows=rows, seed=seed)
    return ModelCard.add_fields(model_path, drift_reference=field)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m ml.reference",
        description="Embed a sample of a model's training photos as its drift reference.",
    )
    parser.add_argument("model", type=Path, help="the .onnx file; its card is updated")
    parser.add_argument("--data", type=Path, required=True, help="data set with train/<label>/")
    parser.add_argument("--extra-data", type=Path, help="a second data set with train/<label>/")
    parser.add_argument("--rows", type=int, default=REFERENCE_ROWS, help="photos to embed")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Write the reference and print where."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    roots = [args.data] + ([args.extra_data] if args.extra_data else [])
    card = add_reference(
        args.model, [root / "train" for root in roots], rows=args.rows, seed=args.seed
    )
    print(f"reference: {reference_path_for(args.model)} (named in {card})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
