"""The windows both sides test, built from held-out photos with the served model.

From the validation photos (never trained on, never used to choose anything), one seeded draw:
- the first `reference_photos` are NannyML's labelled reference period: CBPE needs one, with
  the model's probabilities and the true labels, to decide whether to recalibrate;
- the next `window` photos are the analysis window, as they came and through each shift of
  `ml.drift_check.SHIFTS` (the same photos, so a difference between two rows is the shift's);
- a seeded sample of the packaged non-pet photos is one more window, unlabelled.

Every image goes through the model once, in the service's own preprocessing
(`ml.evaluate.score_images`): probabilities and embeddings come from the same run.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from catdog.model import Classifier
from ml import drift_check
from ml.anchors.exchange import UNLABELLED, Exchange, Window
from ml.card import LABELS
from ml.dataset import list_labelled
from ml.evaluate import score_images

AS_GIVEN = "as given"
NON_PETS = "non-pet photos"


def scored(
    classifier: Classifier, name: str, images: Sequence[Image.Image], truth: np.ndarray
) -> Window:
    """One window: the model's probabilities and embeddings of `images`."""
    scores = score_images(classifier, images)
    if scores.embedding is None:
        raise ValueError("the model has no 'embedding' output")
    return Window(name, scores.embedding, scores.probabilities, truth)


def build(
    classifier: Classifier,
    folders: Sequence[Path],
    *,
    reference_photos: int = 100,
    window: int = 50,
    shifts: Sequence[str] = tuple(drift_check.SHIFTS),
    non_pets: int = 50,
    repeats: int = 20,
    seed: int = 0,
) -> Exchange:
    """Score the photos of `folders` (each with `<label>/` folders) into windows."""
    if classifier.reference is None:
        raise ValueError("the model's card names no drift reference")
    items = [item for folder in folders for item in list_labelled(folder, LABELS)]
    needed = reference_photos + window
    if len(items) < needed:
        raise ValueError(f"{needed} photos needed, {len(items)} found in {list(folders)}")
    rng = np.random.default_rng(seed)
    # Shuffled, not sorted: the files come one class after the other, and a window of one
    # class is a drift of its own.
    chosen = [items[index] for index in rng.choice(len(items), needed, replace=False)]
    truth = np.array([item.label for item in chosen], dtype=np.int64)
    photos = [Image.open(item.path).convert("RGB") for item in chosen]
    analysed, analysed_truth = photos[reference_photos:], truth[reference_photos:]
    progress = tqdm(total=2 + len(shifts) + bool(non_pets), desc="windows", file=sys.stderr)
    reference = scored(classifier, "reference", photos[:reference_photos], truth[:reference_photos])
    progress.update()
    windows = [scored(classifier, AS_GIVEN, analysed, analysed_truth)]
    progress.update()
    for name in shifts:
        shift = drift_check.SHIFTS[name]
        windows.append(
            scored(classifier, name, [shift(image) for image in analysed], analysed_truth)
        )
        progress.update()
    if non_pets:
        pool = drift_check.non_pet_photos()
        rows = rng.choice(len(pool), min(non_pets, len(pool)), replace=False)
        unlabelled = np.full(len(rows), UNLABELLED, dtype=np.int64)
        windows.append(scored(classifier, NON_PETS, [pool[row] for row in rows], unlabelled))
        progress.update()
    progress.close()
    # Every held-out photo as it came, for undrifted windows drawn again and again: one
    # undrifted window says little about a false-alarm rate.
    undrifted = np.concatenate([reference.embedding, windows[0].embedding])
    repeat_rows = np.array(
        [rng.choice(len(undrifted), window, replace=False) for _ in range(repeats)],
        dtype=np.int64,
    ).reshape(repeats, window)
    return Exchange(
        drift_reference=classifier.reference,
        labelled_reference=reference,
        windows=tuple(windows),
        undrifted_pool=undrifted,
        repeat_rows=repeat_rows,
    )
