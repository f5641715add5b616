"""The canary rollback decision on figures whose answer is known."""

from __future__ import annotations

import pytest

from services.inference.canary import RollbackPolicy, VersionFigures, accuracy_p_value, judge

POLICY = RollbackPolicy(alpha=0.05, min_labelled=30, latency_ratio=2.0, min_requests=100)


def figures(version: str, labelled: int, correct: int, *, answers: int = 200, p95: float = 50.0):
    return VersionFigures(version, answers, p95, labelled, correct)


def test_a_clearly_less_accurate_canary_is_rolled_back_with_its_figures() -> None:
    verdict = judge(figures("c", 60, 48), figures("a", 60, 59), POLICY)
    assert verdict is not None and verdict.reason == "accuracy"
    assert verdict.figures["p_value"] < 0.05
    assert verdict.figures["canary"]["accuracy"] == pytest.approx(0.8)
    low, high = verdict.figures["canary"]["accuracy_interval"]
    assert low < 0.8 < high
    assert "80.0% on 60 labelled answers" in verdict.summary


def test_a_difference_within_noise_keeps_the_canary() -> None:
    # 57/60 against 58/60: p is far above 0.05.
    assert accuracy_p_value(figures("c", 60, 57), figures("a", 60, 58)) > 0.3
    assert judge(figures("c", 60, 57), figures("a", 60, 58), POLICY) is None


def test_a_better_canary_is_kept() -> None:
    assert judge(figures("c", 60, 60), figures("a", 60, 40), POLICY) is None


def test_nothing_is_concluded_before_the_minimum_of_labelled_answers() -> None:
    assert judge(figures("c", 29, 0), figures("a", 100, 100), POLICY) is None
    assert judge(figures("c", 30, 0), figures("a", 100, 100), POLICY) is not None


def test_identical_shares_are_no_evidence() -> None:
    assert accuracy_p_value(figures("c", 40, 40), figures("a", 40, 40)) == 1.0
    assert accuracy_p_value(figures("c", 0, 0), figures("a", 40, 40)) is None


def test_latency_over_budget_rolls_back_once_both_have_enough_answers() -> None:
    slow, usual = figures("c", 0, 0, p95=120.0), figures("a", 0, 0, p95=50.0)
    verdict = judge(slow, usual, POLICY)
    assert verdict is not None and verdict.reason == "latency"
    assert "120 ms against 50 ms" in verdict.summary
    few = figures("c", 0, 0, answers=99, p95=120.0)
    assert judge(few, usual, POLICY) is None
    assert judge(figures("c", 0, 0, p95=99.0), usual, POLICY) is None


def test_failed_model_calls_over_budget_roll_back() -> None:
    healthy = figures("a", 0, 0)
    verdict = judge(healthy, healthy, POLICY, canary_calls=100, canary_errors=3)
    assert verdict is not None and verdict.reason == "errors"
    assert judge(healthy, healthy, POLICY, canary_calls=100, canary_errors=2) is None
