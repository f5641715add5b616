"""The Prometheus config and rules, checked by promtool and by the project's conventions."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.monitoring import run_tool
from monitoring.grafana.build_dashboards import DASHBOARD_FILE
from monitoring.render import MONITORING_DIR, PROMETHEUS_CONFIG, RULES_DIR

RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
TEST_FILES = sorted((MONITORING_DIR / "prometheus" / "tests").glob("*.yml"))
RUNBOOK = MONITORING_DIR / "runbook.md"
RECORDING_NAME = re.compile(r"^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$")
# The queries of the original guide (public contract): they must keep working unchanged.
CONTRACT_QUERIES = [
    "rate(cv_predictions_total[5m])",
    "histogram_quantile(0.50, rate(cv_inference_time_seconds_bucket[5m]))",
    'sum(rate(cv_predictions_total{result="cat"}[5m])) / sum(rate(cv_predictions_total[5m]))',
    'rate(cv_user_feedback_total{satisfaction="unsatisfied"}[10m])',
]


def _rules(kind: str) -> list[dict[str, Any]]:
    found = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            found += [rule for rule in group["rules"] if kind in rule]
    return found


ALERTS = _rules("alert")
RECORDS = _rules("record")


def _alert_tests() -> list[dict[str, Any]]:
    cases = []
    for path in TEST_FILES:
        for test in yaml.safe_load(path.read_text())["tests"]:
            cases += test.get("alert_rule_test", [])
    return cases


def test_promtool_accepts_the_committed_config(promtool: str) -> None:
    result = run_tool(promtool, "check", "config", PROMETHEUS_CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(RULE_FILES)} rule files found" in result.stdout


def test_promtool_accepts_every_rule_file(promtool: str) -> None:
    result = run_tool(promtool, "check", "rules", *RULE_FILES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_FILES)


def test_promtool_unit_tests_pass(promtool: str) -> None:
    result = run_tool(promtool, "test", "rules", *TEST_FILES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(TEST_FILES)


def test_a_broken_expectation_makes_promtool_fail(promtool: str, tmp_path: Path) -> None:
    """The unit tests can fail: the same test with a wrong label is refused."""
    source = MONITORING_DIR / "prometheus" / "tests" / "database.yml"
    broken = source.read_text().replace("severity: critical", "severity: info", 1)
    for rule_file in RULE_FILES:
        broken = broken.replace(f"../rules/{rule_file.name}", str(rule_file))
    (tmp_path / "broken.yml").write_text(broken)
    result = run_tool(promtool, "test", "rules", tmp_path / "broken.yml")
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr


@pytest.mark.parametrize("rule", ALERTS, ids=[rule["alert"] for rule in ALERTS])
def test_alert_follows_the_conventions(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in {"critical", "warning", "info"}
    assert rule["labels"]["service"]
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url"}
    assert "{{" not in annotations["summary"], "the summary is one static sentence"
    assert annotations["summary"].endswith(".") and annotations["summary"].count(". ") == 0
    assert "{{ $labels.job }}" in annotations["description"]
    assert "{{ $value" in annotations["description"]
    assert annotations["runbook_url"] == f"monitoring/runbook.md#{rule['alert'].lower()}"


@pytest.mark.parametrize("rule", ALERTS, ids=[rule["alert"] for rule in ALERTS])
def test_alert_has_a_runbook_section(rule: dict[str, Any]) -> None:
    headings = re.findall(r"^## (\S+)\s*$", RUNBOOK.read_text(), flags=re.MULTILINE)
    assert rule["alert"] in headings


@pytest.mark.parametrize("rule", ALERTS, ids=[rule["alert"] for rule in ALERTS])
def test_alert_is_unit_tested_firing_and_silent(rule: dict[str, Any]) -> None:
    cases = [case for case in _alert_tests() if case["alertname"] == rule["alert"]]
    assert any(case.get("exp_alerts") for case in cases), "no case where it fires"
    assert any(not case.get("exp_alerts") for case in cases), "no case where it stays silent"
    for case in cases:
        for expected in case.get("exp_alerts") or []:
            assert expected["exp_labels"]["severity"] == rule["labels"]["severity"]
            assert set(expected["exp_annotations"]) == {"summary", "description", "runbook_url"}


def test_every_test_group_sets_its_interval() -> None:
    for path in TEST_FILES:
        for test in yaml.safe_load(path.read_text())["tests"]:
            assert "interval" in test, f"{path.name}: {test.get('name')}"


def test_runbook_has_no_section_without_an_alert() -> None:
    headings = set(re.findall(r"^## (CV\w+)\s*$", RUNBOOK.read_text(), flags=re.MULTILINE))
    assert headings == {rule["alert"] for rule in ALERTS}


@pytest.mark.parametrize("rule", RECORDS, ids=[rule["record"] for rule in RECORDS])
def test_recording_rule_is_named_level_metric_operation(rule: dict[str, Any]) -> None:
    assert RECORDING_NAME.match(rule["record"])


def test_the_contract_queries_are_on_the_dashboard() -> None:
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    expressions = {
        target.get("expr") for panel in dashboard["panels"] for target in panel.get("targets", [])
    }
    for query in CONTRACT_QUERIES:
        assert query in expressions
