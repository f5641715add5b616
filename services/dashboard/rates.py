"""Rates from counts, with the uncertainty that keeps 3 answers from reading as 100%."""

from __future__ import annotations

import math

# Below this many answers a rate is shown with a warning rather than as a headline.
MIN_TRUSTED_COUNT = 30
_Z95 = 1.959963984540054


def wilson_interval(successes: int, total: int, z: float = _Z95) -> tuple[float, float]:
    """The Wilson score interval (95% by default) of a proportion; (0, 1) without data."""
    if total <= 0:
        return 0.0, 1.0
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def describe_rate(successes: int, total: int, noun: str) -> str:
    """`92.1% (n = 8,123, 95% CI 91.5–92.7%)`, or a plain statement when there is no data."""
    if total <= 0:
        return f"no {noun} yet"
    low, high = wilson_interval(successes, total)
    text = f"{successes / total:.1%} (n = {total:,} {noun}, 95% CI {low:.0%}–{high:.0%})"
    if total < MIN_TRUSTED_COUNT:
        text += " — too few to judge"
    return text
