"""The cat/dog head: L2-regularised logistic regression on pooled backbone features."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LinearHead:
    """`sigmoid(features @ weight + bias)` is the probability of label 1 ("dog")."""

    weight: np.ndarray  # [F] float64
    bias: float
    mean: np.ndarray  # [F] feature centring folded into the bias at export
    l2: float

    def decision(self, features: np.ndarray) -> np.ndarray:
        """Log-odds of label 1."""
        return (features - self.mean) @ self.weight + self.bias

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Label index per row."""
        return (self.decision(features) > 0).astype(np.int64)

    def two_class_linear(self) -> tuple[np.ndarray, np.ndarray]:
        """Weight [2, F] and bias [2] whose softmax equals the sigmoid: logits -z/2, +z/2."""
        half = 0.5 * self.weight
        bias = 0.5 * (self.bias - float(self.mean @ self.weight))
        weight = np.stack([-half, half]).astype(np.float32)
        return weight, np.array([-bias, bias], dtype=np.float32)


def fit(features: np.ndarray, labels: np.ndarray, l2: float, iterations: int = 50) -> LinearHead:
    """Newton's method on the mean log-loss plus `l2/2 * |w|^2`: exact, fast and deterministic."""
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    mean = x.mean(axis=0)
    # Centred features plus a constant column; the bias is not regularised.
    design = np.hstack([x - mean, np.ones((len(x), 1))])
    params = np.zeros(design.shape[1])
    penalty = np.full(design.shape[1], l2)
    penalty[-1] = 0.0
    for _ in range(iterations):
        probability = 1.0 / (1.0 + np.exp(-(design @ params)))
        gradient = design.T @ (probability - y) / len(y) + penalty * params
        curvature = probability * (1.0 - probability)
        hessian = (design * curvature[:, None]).T @ design / len(y) + np.diag(penalty)
        hessian[-1, -1] += 1e-9  # keeps the solve defined on separable data
        step = np.linalg.solve(hessian, gradient)
        params -= step
        if np.abs(step).max() < 1e-10:
            break
    return LinearHead(weight=params[:-1], bias=float(params[-1]), mean=mean, l2=l2)


def folds(labels: np.ndarray, count: int, seed: int) -> list[np.ndarray]:
    """Stratified fold index of every row, shuffled by `seed`."""
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(labels), dtype=np.int64)
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        rows = rows[rng.permutation(len(rows))]
        assignment[rows] = np.arange(len(rows)) % count
    return [np.flatnonzero(assignment == fold) for fold in range(count)]


@dataclass(frozen=True)
class CrossValidation:
    """Held-out figures of one penalty, and every training row's held-out log-odds."""

    l2: float
    accuracy: float
    log_loss: float
    held_out: np.ndarray  # [N] log-odds of label 1 from a head that never saw the row


def cross_validate(
    views: Sequence[np.ndarray], labels: np.ndarray, l2: float, fold_count: int, seed: int
) -> CrossValidation:
    """Held-out figures on the first view (the photo as served); all views of training rows
    are fitted (the mirror images are augmentation)."""
    held_out = np.zeros(len(labels))
    for rows in folds(labels, fold_count, seed):
        train = np.setdiff1d(np.arange(len(labels)), rows)
        head = fit(
            np.concatenate([view[train] for view in views]),
            np.concatenate([labels[train]] * len(views)),
            l2,
        )
        held_out[rows] = head.decision(views[0][rows])
    correct = int(((held_out > 0) == labels).sum())
    # log(1 + exp(-z)) for the true side, computed without overflow.
    loss = float(np.logaddexp(0.0, np.where(labels == 1, -held_out, held_out)).mean())
    return CrossValidation(l2=l2, accuracy=correct / len(labels), log_loss=loss, held_out=held_out)


def choose_l2(
    views: Sequence[np.ndarray],
    labels: np.ndarray,
    grid: Sequence[float],
    fold_count: int = 5,
    seed: int = 0,
) -> tuple[CrossValidation, list[CrossValidation]]:
    """The grid value with the lowest cross-validated log-loss.

    Log-loss rather than accuracy: on a few hundred easy photos accuracy ties across the whole
    grid, while log-loss still sees how confidently the held-out photos are classified.
    """
    results = [cross_validate(views, labels, l2, fold_count, seed) for l2 in grid]
    for result in results:
        logger.info(
            "l2=%g cross-validated accuracy %.4f log-loss %.4f",
            result.l2,
            result.accuracy,
            result.log_loss,
        )
    best = min(results, key=lambda result: (result.log_loss, -result.l2))
    return best, results
