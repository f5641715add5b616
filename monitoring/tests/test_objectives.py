"""The thresholds the dashboards draw are the ones the committed rules alert on."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from services.common.objectives import RULE_FRAGMENTS
from services.common.thresholds import LOW_CONFIDENCE
from services.inference.metrics import CONFIDENCE_BUCKETS

RULES_DIR = Path(__file__).resolve().parents[1] / "prometheus" / "rules"


def _expressions(file_name: str) -> dict[str, str]:
    document = yaml.safe_load((RULES_DIR / file_name).read_text())
    return {
        rule.get("alert") or rule["record"]: " ".join(rule["expr"].split())
        for group in document["groups"]
        for rule in group["rules"]
    }


def _missing(expression: str, fragments: tuple[str, ...]) -> list[str]:
    return [fragment for fragment in fragments if fragment not in expression]


@pytest.mark.parametrize(("place", "fragments"), RULE_FRAGMENTS.items(), ids=str)
def test_each_rule_compares_against_the_objective(
    place: tuple[str, str], fragments: tuple[str, ...]
) -> None:
    file_name, name = place
    expression = _expressions(file_name)[name]
    assert _missing(expression, fragments) == [], expression


def test_a_rule_edited_alone_is_caught() -> None:
    expression = _expressions("alerts.yml")["CVEstimatedAccuracyLow"]
    edited = expression.replace("< 0.95", "< 0.96")
    assert _missing(edited, RULE_FRAGMENTS[("alerts.yml", "CVEstimatedAccuracyLow")]) == ["< 0.95"]


def test_the_low_confidence_threshold_is_a_bucket_boundary_of_the_confidence_histogram() -> None:
    # Otherwise the recording rule's le="0.8" bucket would not exist.
    assert LOW_CONFIDENCE in CONFIDENCE_BUCKETS
