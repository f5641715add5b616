"""Proportions in plain Python: the Wilson score interval and the two-proportion z-test.

The services' images carry no SciPy, pandas or statsmodels (some 250 MB) for two formulas;
`services/common/tests/test_proportions.py` holds both to statsmodels, on a grid of counts.
"""

from __future__ import annotations

import math
from statistics import NormalDist

Z95 = NormalDist().inv_cdf(0.975)  # the two-sided 95% quantile of a normal estimate


def z_for(alpha: float) -> float:
    """The two-sided normal quantile of a (1 - alpha) interval."""
    return NormalDist().inv_cdf(1 - alpha / 2)


def wilson_interval(successes: int, total: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval (95% by default) of a proportion; (0, 1) without data."""
    if total <= 0:
        return 0.0, 1.0
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def smaller_proportion_p_value(
    successes: int, total: int, other_successes: int, other_total: int
) -> float:
    """One-sided p-value that the first proportion is smaller than the second: the pooled
    two-proportion z-test (statsmodels' `proportions_ztest`, `alternative="smaller"`).

    NaN when the pooled proportion is 0 or 1 (both all wrong or all right: no evidence).
    """
    if total <= 0 or other_total <= 0:
        raise ValueError("both proportions need at least one observation")
    pooled = (successes + other_successes) / (total + other_total)
    variance = pooled * (1 - pooled) * (1 / total + 1 / other_total)
    if variance <= 0:
        return math.nan
    z = (successes / total - other_successes / other_total) / math.sqrt(variance)
    return NormalDist().cdf(z)
