"""One row of the committed Grafana dashboard, its PromQL evaluated by promtool on given series."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from harness.monitoring import run_tool
from monitoring.grafana.build_dashboards import DASHBOARD_FILE

# (panel title, query index) -> {labels: value}
Expected = dict[tuple[str, int], dict[str, float]]


def row_queries(row: str) -> dict[tuple[str, int], str]:
    """(panel title, query index) -> expression, for the PromQL panels of `row`."""
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    found, inside = {}, False
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            inside = panel["title"] == row
            continue
        if inside:
            for index, target in enumerate(panel["targets"]):
                if "expr" in target:
                    found[(panel["title"], index)] = target["expr"]
    return found


def series(name: str, values: str, instance: str) -> dict[str, str]:
    """An input series of `name` (with labels) scraped from `instance`."""
    return {"series": name.replace("{", f'{{instance="{instance}", ', 1), "values": values}


def promtool_test(
    promtool: str,
    path: Path,
    row: str,
    input_series: list[dict[str, str]],
    expected: Expected,
    eval_time: str,
) -> tuple[int, str]:
    """Run `promtool test rules` on the row's queries; (exit code, output)."""
    queries = row_queries(row)
    document: dict[str, Any] = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": input_series,
                "promql_expr_test": [
                    {
                        "expr": queries[key],
                        "eval_time": eval_time,
                        "exp_samples": [
                            {"labels": labels, "value": value} for labels, value in samples.items()
                        ],
                    }
                    for key, samples in expected.items()
                ],
            }
        ],
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    result = run_tool(promtool, "test", "rules", path)
    return result.returncode, result.stdout + result.stderr
