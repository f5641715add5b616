"""The retraining gate's test: exact one-sided McNemar p-values and the pairing of answers."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest

from ml.evaluate import Evaluation
from ml.gate import compare, one_sided_p


def upper_tail(wins: int, losses: int) -> float:
    """P(X >= wins) for X ~ Binomial(wins + losses, 1/2), summed term by term."""
    n = wins + losses
    return sum(comb(n, k) for k in range(wins, n + 1)) / 2**n


@pytest.mark.parametrize(
    ("wins", "losses"),
    [(0, 0), (0, 5), (1, 0), (3, 3), (2, 7), (7, 2), (10, 1), (20, 0), (5, 6), (6, 5)],
)
def test_the_p_value_is_the_exact_upper_binomial_tail(wins: int, losses: int) -> None:
    assert one_sided_p(wins, losses) == pytest.approx(upper_tail(wins, losses), abs=1e-12)


def evaluation(paths: list[str], truth: list[int], predicted: list[int]) -> Evaluation:
    probabilities = np.eye(2)[predicted].astype(np.float32)
    return Evaluation(
        labels=("cat", "dog"),
        paths=tuple(paths),
        truth=np.array(truth),
        probabilities=probabilities,
        pet_score=None,
        pet_rank=None,
        not_a_pet=np.zeros(len(paths), dtype=bool),
        rejected=(),
    )


def test_answers_are_paired_by_photo_and_only_disagreements_count() -> None:
    paths = [f"p{index}" for index in range(12)]
    truth = [0, 1] * 6
    candidate = evaluation(paths, truth, truth)  # always right
    wrong_on = {0, 1, 2, 3, 4, 5, 6, 7, 8}
    active_predicted = [1 - t if index in wrong_on else t for index, t in enumerate(truth)]
    # The active model read the photos in another order and could not read p11.
    order = [10, *range(10)]
    active = evaluation(
        [paths[i] for i in order], [truth[i] for i in order], [active_predicted[i] for i in order]
    )

    result = compare([candidate], [active], level=0.05)

    assert result.photos == 11
    assert result.unpaired == 1
    assert (result.candidate_only, result.active_only) == (9, 0)
    assert (result.candidate_correct, result.active_correct) == (11, 2)
    assert result.p_value == pytest.approx(0.5**9)
    assert result.passed
    assert result.as_dict()["candidate_accuracy"] == 1.0


def test_a_small_lead_is_noise_and_does_not_pass() -> None:
    paths = [f"p{index}" for index in range(10)]
    truth = [0] * 10
    # Candidate wins on 3 photos, loses on 1: p = 5/16, far above 0.05.
    candidate = evaluation(paths, truth, [0, 0, 0, 1, 0, 0, 0, 0, 0, 0])
    active = evaluation(paths, truth, [1, 1, 1, 0, 0, 0, 0, 0, 0, 0])

    result = compare([candidate], [active], level=0.05)

    assert (result.candidate_only, result.active_only) == (3, 1)
    assert result.p_value == pytest.approx(5 / 16)
    assert not result.passed
    assert "not significantly better" in result.reason()
