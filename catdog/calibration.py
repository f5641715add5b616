"""Expected calibration error and the reliability curve behind it (top-label, equal-width bins).

The model build reports it on held-out photos and the inference service on live predictions
that received a true label through feedback: one definition for both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ECE_BINS = 15


@dataclass(frozen=True)
class Reliability:
    """Per-bin confidence against accuracy, and their weighted gap (the ECE)."""

    bin_edges: np.ndarray  # [bins + 1] over the predicted class's probability, 0.5 to 1
    confidence: np.ndarray  # [bins] mean confidence, NaN where empty
    accuracy: np.ndarray  # [bins]
    count: np.ndarray  # [bins]
    ece: float


def reliability(
    probability_dog: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> Reliability:
    """Expected calibration error over `bins` equal-width confidence bins (top-label ECE).

    The confidence is the probability of the predicted class; a photo in bin b counts right
    when the predicted class is its label. ECE = sum over bins of (count / N) x |acc - conf|.
    """
    predicted = (probability_dog >= 0.5).astype(np.int64)
    confidence = np.where(predicted == 1, probability_dog, 1.0 - probability_dog)
    correct = (predicted == labels).astype(np.float64)
    # Equal-width bins over [0, 1], as the usual 15-bin ECE; a binary top label is >= 0.5, so
    # the lower bins stay empty and are reported as such.
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore"):
        mean_confidence = np.bincount(which, confidence, bins) / count
        mean_accuracy = np.bincount(which, correct, bins) / count
    gaps = np.where(count > 0, np.abs(mean_accuracy - mean_confidence), 0.0)
    ece = float((count * np.nan_to_num(gaps)).sum() / max(len(labels), 1))
    return Reliability(edges, mean_confidence, mean_accuracy, count, ece)
