"""Rates from counts, with the uncertainty that keeps 3 answers from reading as 100%."""

from __future__ import annotations

from services.common.proportions import wilson_interval
from services.dashboard.language import count, percent, t

# Below this many answers a rate is shown with a warning rather than as a headline.
MIN_TRUSTED_COUNT = 30


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
