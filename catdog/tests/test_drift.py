"""The drift test and the accuracy estimate on samples whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from catdog.drift import critical_score, estimate_accuracy, mmd_test


def test_same_distribution_windows_are_called_drift_at_about_the_level() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(300, 16))
    called = sum(
        mmd_test(
            reference, rng.normal(size=(40, 16)), alpha=0.05, permutations=200, seed=i
        ).drifted(0.05)
        for i in range(100)
    )
    # 100 windows at 5 %: 11 or more happens with probability < 1.2 %.
    assert called <= 10


def test_a_shifted_mean_is_drift_and_its_score_passes_the_threshold() -> None:
    rng = np.random.default_rng(1)
    result = mmd_test(rng.normal(size=(300, 16)), rng.normal(0.5, 1, (40, 16)), alpha=0.01)
    assert result.p_value < 0.01 and result.drifted(0.01)
    assert result.score > result.threshold
    assert (result.window, result.reference) == (40, 300)


def test_the_threshold_and_the_p_value_always_agree() -> None:
    rng = np.random.default_rng(2)
    reference = rng.normal(size=(200, 8))
    for seed in range(150):
        window = rng.normal(size=(30, 8)) + rng.uniform(0, 0.6)
        result = mmd_test(reference, window, alpha=0.01, permutations=200, seed=seed)
        assert (result.p_value < 0.01) == (result.score > result.threshold)


def test_the_critical_score_is_the_null_score_the_level_allows_beating() -> None:
    null = np.arange(200, dtype=float)  # 199 is the largest
    # 201 x 0.01 = 2.01: p < 0.01 needs at most one null score at or above the window's.
    assert critical_score(null, 0.01) == 198.0
    assert critical_score(null[:50], 0.01) == math.inf


def test_too_small_a_sample_is_refused() -> None:
    with pytest.raises(ValueError, match="two rows"):
        mmd_test(np.zeros((1, 3)), np.zeros((5, 3)), alpha=0.05)


def test_estimated_accuracy_is_mean_confidence_with_a_poisson_binomial_error() -> None:
    estimate = estimate_accuracy(np.array([0.9, 0.8, 1.0, 0.7]))
    assert estimate.ratio == pytest.approx(0.85)
    assert estimate.stderr == pytest.approx(math.sqrt(0.09 + 0.16 + 0 + 0.21) / 4)
    empty = estimate_accuracy(np.array([]))
    assert empty.count == 0 and math.isnan(empty.ratio)
