"""The plain-Python proportions against statsmodels, which the images no longer carry."""

from __future__ import annotations

import math
import warnings

import pytest
from statsmodels.stats.proportion import proportion_confint, proportions_ztest

from services.common.proportions import smaller_proportion_p_value, wilson_interval, z_for

COUNTS = [(0, 1), (1, 1), (0, 7), (3, 7), (7, 7), (18, 20), (99, 100), (480, 500), (1, 1000)]


@pytest.mark.parametrize(("successes", "total"), COUNTS)
@pytest.mark.parametrize("alpha", [0.05, 0.01, 0.2])
def test_wilson_interval_is_statsmodels_wilson(successes: int, total: int, alpha: float) -> None:
    expected = proportion_confint(successes, total, alpha=alpha, method="wilson")
    assert wilson_interval(successes, total, z_for(alpha)) == pytest.approx(expected, abs=1e-12)


def test_wilson_interval_without_data_is_everything() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize(("successes", "total"), COUNTS)
@pytest.mark.parametrize(("other_successes", "other_total"), COUNTS)
def test_smaller_proportion_p_value_is_statsmodels_z_test(
    successes: int, total: int, other_successes: int, other_total: int
) -> None:
    ours = smaller_proportion_p_value(successes, total, other_successes, other_total)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # its 0/0 where the pool is 0 or 1
        _, theirs = proportions_ztest(
            [successes, other_successes], [total, other_total], alternative="smaller"
        )
    if math.isnan(ours):
        assert not math.isfinite(theirs)
    else:
        assert ours == pytest.approx(theirs, abs=1e-12)


def test_a_clearly_worse_proportion_has_a_small_p_value() -> None:
    assert smaller_proportion_p_value(10, 40, 38, 40) < 1e-6
    assert smaller_proportion_p_value(38, 40, 10, 40) > 1 - 1e-6
