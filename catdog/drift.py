"""Is the model still looking at the photos it was trained on, and how right is it likely to be?

Two label-free checks of one window of recent predictions of a model version:

- **Embedding drift**: a kernel two-sample test (maximum mean discrepancy, Gretton et al.,
  2012) between the backbone's pooled features of the window and of the model's own training
  photos, with a permutation p-value. MMD rather than a domain classifier: it needs no model
  fitted per check (a classifier's AUC needs cross-validation to be honest, and a trained
  classifier per version per interval on 2 cores is the wrong price), it is exact under the
  null at any window size through the permutations, and it sees any difference of
  distributions with a characteristic kernel, not only the ones a linear probe separates.
- **Estimated accuracy** (confidence-based performance estimation, the idea behind NannyML's
  CBPE): with calibrated probabilities, the chance that an answer is right is its confidence,
  so the expected accuracy of a window is its mean confidence, with a binomial-sum standard
  error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DEFAULT_PERMUTATIONS = 500


@dataclass(frozen=True)
class DriftResult:
    """One two-sample test: the window against the reference."""

    score: float  # unbiased MMD² with a Gaussian kernel
    threshold: float  # the score the window must exceed to be called drift at `alpha`
    p_value: float
    window: int
    reference: int

    def drifted(self, alpha: float) -> bool:
        """Significant at `alpha`."""
        return self.p_value < alpha


def mmd_test(
    reference: np.ndarray,
    window: np.ndarray,
    *,
    alpha: float,
    permutations: int = DEFAULT_PERMUTATIONS,
    seed: int = 0,
) -> DriftResult:
    """MMD² of `window` against `reference` with a permutation p-value.

    The kernel is Gaussian with the median pairwise distance of the pooled sample as its
    width (the usual heuristic). Every permutation reuses the one kernel matrix: the sums it
    needs are quadratic forms of the membership vector, computed for all permutations in one
    matrix product.
    """
    x = np.asarray(window, dtype=np.float64)
    y = np.asarray(reference, dtype=np.float64)
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError("a two-sample test needs at least two rows on each side")
    pooled = np.concatenate([x, y])
    squares = np.einsum("ij,ij->i", pooled, pooled)
    distances = np.maximum(squares[:, None] + squares[None, :] - 2.0 * pooled @ pooled.T, 0.0)
    upper = distances[np.triu_indices(n + m, k=1)]
    width = float(np.median(upper[upper > 0])) if np.any(upper > 0) else 1.0
    kernel = np.exp(-distances / width)
    total = n + m
    rng = np.random.default_rng(seed)
    members = np.zeros((permutations + 1, total))
    members[0, :n] = 1.0
    for row in range(1, permutations + 1):
        members[row, rng.permutation(total)[:n]] = 1.0
    scores = _mmd2(kernel, members, n, m)
    observed = float(scores[0])
    null = scores[1:]
    p_value = float((1 + np.count_nonzero(null >= observed)) / (permutations + 1))
    return DriftResult(observed, critical_score(null, alpha), p_value, n, m)


def critical_score(null: np.ndarray, alpha: float) -> float:
    """The score a window must exceed for its permutation p-value to be under `alpha`.

    p = (1 + c) / (B + 1) with c the null scores at or above the window's, so p < alpha exactly
    when c <= K = ceil(alpha (B + 1)) - 2, that is when the score beats the (K + 1)-th largest
    null score. An interpolated quantile would disagree with the p-value near the boundary.
    """
    most_beaten = math.ceil(alpha * (len(null) + 1)) - 2
    if most_beaten < 0:
        return math.inf  # too few permutations to ever reach alpha
    return float(np.sort(null)[::-1][most_beaten])


def _mmd2(kernel: np.ndarray, members: np.ndarray, n: int, m: int) -> np.ndarray:
    """Unbiased MMD² for each membership row (1 marks the window's rows); the kernel's
    diagonal is 1, which the unbiased estimate leaves out."""
    row_sums = kernel.sum(axis=1)
    grand = row_sums.sum()
    within_x = np.einsum("pi,ip->p", members, kernel @ members.T)
    to_all = members @ row_sums
    between = to_all - within_x
    within_y = grand - 2.0 * to_all + within_x
    return (within_x - n) / (n * (n - 1)) + (within_y - m) / (m * (m - 1)) - 2.0 * between / (n * m)


@dataclass(frozen=True)
class AccuracyEstimate:
    """Expected accuracy of a window from its calibrated confidences alone."""

    ratio: float
    stderr: float
    count: int


def estimate_accuracy(confidence: np.ndarray) -> AccuracyEstimate:
    """Mean confidence; each answer is right with probability c, so the count of right answers
    has variance Σ c(1 − c) (a Poisson-binomial), hence the standard error."""
    values = np.asarray(confidence, dtype=np.float64)
    if len(values) == 0:
        return AccuracyEstimate(math.nan, math.nan, 0)
    stderr = math.sqrt(float(np.sum(values * (1.0 - values)))) / len(values)
    return AccuracyEstimate(float(values.mean()), stderr, len(values))
