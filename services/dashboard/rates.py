"""Rates from counts, with the uncertainty that keeps 3 answers from reading as 100%."""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np
from statsmodels.stats.proportion import proportion_confint

from services.dashboard.language import count, percent, t

# Below this many answers a rate is shown with a warning rather than as a headline.
MIN_TRUSTED_COUNT = 30
Z95 = NormalDist().inv_cdf(0.975)  # the two-sided 95% quantile of a normal estimate


def wilson_interval(successes: int, total: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval (95% by default) of a proportion; (0, 1) without data."""
    if total <= 0:
        return 0.0, 1.0
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def wilson_intervals(
    successes: Sequence[int], totals: Sequence[int], alpha: float = 0.05
) -> list[tuple[float, float] | None]:
    """Wilson score intervals by statsmodels, one call for all; None where there is no data.

    The per-bucket band of the satisfaction graph keeps `wilson_interval`: the same formula
    without a numpy round trip for each of up to 200 buckets.
    """
    found = [i for i, total in enumerate(totals) if total > 0]
    result: list[tuple[float, float] | None] = [None] * len(totals)
    if found:
        lows, highs = proportion_confint(
            np.array([successes[i] for i in found]),
            np.array([totals[i] for i in found]),
            alpha=alpha,
            method="wilson",
        )
        for i, low, high in zip(found, lows, highs, strict=True):
            result[i] = (float(low), float(high))
    return result


def describe_rate(successes: int, total: int, noun: str) -> str:
    """`92.1% (n = 8,123 feedbacks, 95% CI 91–93%)`, or a plain statement when there is no data.

    In the request's language; `noun` is given in it.
    """
    if total <= 0:
        return t("rate.none", noun=noun)
    low, high = wilson_interval(successes, total)
    text = t(
        "rate.text",
        rate=percent(successes / total),
        count=count(total),
        noun=noun,
        low=percent(low, 0),
        high=percent(high, 0),
    )
    return text + t("rate.too_few") if total < MIN_TRUSTED_COUNT else text
