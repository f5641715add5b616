"""The embedding drift test on real photos: quiet on held-out photos like the training ones,
loud on grayscale, blurred, rotated, dark and non-pet windows, with the window size each needs.
"""

from __future__ import annotations

import numpy as np
import pytest

from catdog.drift import estimate_accuracy, mmd_test
from catdog.model import Classifier
from ml import drift_check
from ml.card import LABELS
from ml.dataset import list_labelled
from ml.evaluate import evaluate
from ml.tests.conftest import dataset_folder

ALPHA = 0.01
PERMUTATIONS = 200
PHOTOS = 200


@pytest.fixture(scope="module")
def pools(classifier: Classifier) -> dict[str, np.ndarray]:
    """Embeddings of held-out photos, as given and shifted, and of non-pet photos."""
    folders = [
        dataset_folder("CV_EXTRA_DATASET_DIR", "val"),
        dataset_folder("CV_DATASET_DIR", "val"),
    ]
    photos = drift_check.load_photos(folders, PHOTOS, seed=1)
    embedded = {"undrifted": drift_check.embed_images(classifier, photos)}
    for name, shift in drift_check.SHIFTS.items():
        embedded[name] = drift_check.embed_images(classifier, [shift(image) for image in photos])
    embedded["non-pet photos"] = drift_check.embed_images(classifier, drift_check.non_pet_photos())
    return embedded


def test_undrifted_windows_raise_false_alarms_at_about_the_level(
    classifier: Classifier, pools: dict[str, np.ndarray]
) -> None:
    assert classifier.reference is not None
    rate = drift_check.call_rate(
        classifier.reference,
        pools["undrifted"],
        100,
        40,
        alpha=ALPHA,
        permutations=PERMUTATIONS,
        seed=3,
    )
    # 40 windows at 1 %: 3 or more false alarms happens with probability < 0.8 %.
    assert rate <= 2 / 40, f"{rate:.0%} of undrifted windows were called drift"


@pytest.mark.parametrize(
    ("shift", "window"),
    [("grayscale", 50), ("blurred", 20), ("rotated", 100), ("dark", 100), ("non-pet photos", 20)],
)
def test_each_shift_is_called_drift_at_its_window_size(
    classifier: Classifier, pools: dict[str, np.ndarray], shift: str, window: int
) -> None:
    assert classifier.reference is not None
    found = drift_check.detection(
        shift,
        classifier.reference,
        pools[shift],
        [window],
        repeats=10,
        alpha=ALPHA,
        permutations=PERMUTATIONS,
        power=0.9,
        seed=5,
    )
    assert found.needed == window, f"{shift}: called in {found.called[window]:.0%} of windows"


def test_a_shifted_window_is_far_past_the_threshold_an_undrifted_one_stays_under(
    classifier: Classifier, pools: dict[str, np.ndarray]
) -> None:
    assert classifier.reference is not None
    # A random window: the pool is sorted by class, and 100 cats alone are a shift too.
    rows = np.random.default_rng(7).choice(PHOTOS, 100, replace=False)
    quiet = mmd_test(classifier.reference, pools["undrifted"][rows], alpha=ALPHA, seed=1)
    loud = mmd_test(classifier.reference, pools["dark"][rows], alpha=ALPHA, seed=1)
    assert quiet.p_value > ALPHA and quiet.score < quiet.threshold
    assert loud.p_value < ALPHA and loud.score > 3 * loud.threshold


def test_a_window_of_one_class_only_is_a_shift_too(
    classifier: Classifier, pools: dict[str, np.ndarray]
) -> None:
    # The pool is sorted by class (cats first): its first 60 rows are all cats.
    assert classifier.reference is not None
    assert mmd_test(classifier.reference, pools["undrifted"][:60], alpha=ALPHA).drifted(ALPHA)


def test_estimated_accuracy_tracks_the_real_one_on_held_out_photos(classifier: Classifier) -> None:
    items = list_labelled(dataset_folder("CV_EXTRA_DATASET_DIR", "val"), LABELS)
    chosen = np.random.default_rng(2).choice(len(items), PHOTOS, replace=False)
    evaluation = evaluate(classifier, [items[index] for index in sorted(chosen)])
    confidence = evaluation.probabilities.max(axis=1)
    estimate = estimate_accuracy(confidence)
    real = float(np.mean(evaluation.predicted == evaluation.truth))
    assert estimate.count == PHOTOS
    assert 0 < estimate.stderr < 0.02
    assert abs(estimate.ratio - real) <= 3 * estimate.stderr + 1 / PHOTOS
