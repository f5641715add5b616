"""The "Model versions" row of the Grafana dashboard: its PromQL evaluated by promtool.

The queries are read from the committed dashboard JSON and evaluated on series shaped like the
inference service's (two replicas, an active model, a canary, a shadow, and a version that
left the canary role and whose gauges linger), against values worked out by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from harness.monitoring import run_tool
from monitoring.grafana.build_dashboards import DASHBOARD_FILE
from monitoring.tests.grafana_rows import Expected, promtool_test, row_queries, series

ROW = "Model versions"
MINUTES = 70  # an hour of history, so increase(...[1h]) is exact at the last sample
EVAL = f"{MINUTES}m"
# A canary that was rolled back: 0.9.0's gauges keep their last values, its info series is 0.
INFO = {("1.0.0", "active"): 1, ("1.1.0", "canary"): 1, ("2.0.0", "shadow"): 1,
        ("0.9.0", "canary"): 0}  # fmt: skip
# Per-minute increments of each counter (exact rates: 180 a minute is 3/s).
COUNTERS = {
    'cv_predictions_total{result="cat", model_version="1.0.0"}': 180,
    'cv_predictions_total{result="dog", model_version="1.0.0"}': 180,
    'cv_predictions_total{result="dog", model_version="1.1.0"}': 120,  # no cat answer yet
    'cv_model_confidence_sum{model_version="1.0.0"}': 270,
    'cv_model_confidence_count{model_version="1.0.0"}': 360,
    'cv_model_confidence_bucket{model_version="1.0.0", le="0.8"}': 90,
    'cv_model_confidence_sum{model_version="1.1.0"}': 108,
    'cv_model_confidence_count{model_version="1.1.0"}': 120,
    'cv_model_confidence_bucket{model_version="1.1.0", le="0.8"}': 0,
    # 1.0.0: 19 of 20 answers a second within 20 ms; 1.1.0: within 50 ms.
    'cv_inference_time_seconds_bucket{model_version="1.0.0", le="0.01"}': 0,
    'cv_inference_time_seconds_bucket{model_version="1.0.0", le="0.02"}': 1140,
    'cv_inference_time_seconds_bucket{model_version="1.0.0", le="0.05"}': 1200,
    'cv_inference_time_seconds_bucket{model_version="1.0.0", le="+Inf"}': 1200,
    'cv_inference_time_seconds_bucket{model_version="1.1.0", le="0.02"}': 0,
    'cv_inference_time_seconds_bucket{model_version="1.1.0", le="0.05"}': 1140,
    'cv_inference_time_seconds_bucket{model_version="1.1.0", le="0.1"}': 1200,
    'cv_inference_time_seconds_bucket{model_version="1.1.0", le="+Inf"}': 1200,
    'cv_shadow_predictions_total{model_version="2.0.0", agreement="agree"}': 180,
    'cv_shadow_predictions_total{model_version="2.0.0", agreement="disagree"}': 60,
}
GAUGES = {
    'cv_model_feedback_accuracy{model_version="1.0.0", role="active"}': 0.875,
    'cv_model_feedback_accuracy{model_version="1.1.0", role="canary"}': 0.5,
    'cv_model_feedback_accuracy{model_version="0.9.0", role="canary"}': 0.25,
    'cv_model_feedback_labelled{model_version="1.0.0", role="active"}': 40,
    'cv_model_feedback_labelled{model_version="1.1.0", role="canary"}': 8,
    'cv_model_feedback_labelled{model_version="0.9.0", role="canary"}': 3,
    'cv_canary_accuracy_p_value{model_version="1.1.0"}': 0.03,
    'cv_canary_accuracy_p_value{model_version="0.9.0"}': 0.5,
}
# (panel title, query index) -> {labels: value} at EVAL.
EXPECTED: Expected = {
    ("Request share by model version", 0): {
        '{model_version="1.0.0"}': 0.75, '{model_version="1.1.0"}': 0.25,
    },
    ("Cat share by model version", 0): {
        '{model_version="1.0.0"}': 0.5, '{model_version="1.1.0"}': 0,
    },
    ("Inference time p95 by model version", 0): {
        '{model_version="1.0.0"}': 0.02, '{model_version="1.1.0"}': 0.05,
    },
    ("Confidence by model version", 0): {
        '{model_version="1.0.0"}': 0.75, '{model_version="1.1.0"}': 0.9,
    },
    ("Confidence by model version", 1): {
        '{model_version="1.0.0"}': 0.25, '{model_version="1.1.0"}': 0,
    },
    ("Feedback accuracy by model version and role", 0): {
        '{model_version="1.0.0", role="active"}': 0.875,
        '{model_version="1.1.0", role="canary"}': 0.5,
    },
    ("Feedback accuracy by model version and role", 1): {
        '{model_version="1.0.0", role="active"}': 40,
        '{model_version="1.1.0", role="canary"}': 8,
    },
    ("Canary accuracy p-value", 0): {'{model_version="1.1.0"}': 0.03},
    ("Shadow agreement with the answers given", 0): {'{model_version="2.0.0"}': 0.75},
    ("Shadow photos scored and dropped", 0): {'{model_version="2.0.0"}': 4},
    ("Shadow photos scored and dropped", 1): {'{model_version="2.0.0"}': 0},
    ("Line-up changes and rollbacks (1 h)", 0): {'{outcome="swapped"}': 2},
    ("Line-up changes and rollbacks (1 h)", 1): {'{reason="accuracy"}': 1},
}  # fmt: skip


def _input_series() -> list[dict[str, str]]:
    found = []
    # Two replicas: counters split between them, gauges (read from PostgreSQL) the same on both.
    for instance in ("inference-a:8000", "inference-b:8000"):
        for name, per_minute in COUNTERS.items():
            found.append(series(name, f"0+{per_minute / 2:g}x{MINUTES}", instance))
        for name, value in GAUGES.items():
            found.append(series(name, f"{value:g}x{MINUTES}", instance))
        for (version, role), value in INFO.items():
            info = (
                f'cv_model_info{{name="cat-dog", version="{version}", sha256="x", role="{role}"}}'
            )
            found.append(series(info, f"{value}x{MINUTES}", instance))
    # Line-up changes seen by replica a within the hour, and one rollback.
    found.append(
        series('cv_model_swaps_total{outcome="swapped"}', f"0x10 1x20 2x{MINUTES - 31}", "a")
    )
    found.append(
        series('cv_model_rollbacks_total{reason="accuracy"}', f"0x30 1x{MINUTES - 31}", "a")
    )
    return found


def _promtool_test(promtool: str, path: Path, expected: Expected) -> tuple[int, str]:
    return promtool_test(promtool, path, ROW, _input_series(), expected, EVAL)


def test_every_query_of_the_row_is_checked() -> None:
    assert set(row_queries(ROW)) == set(EXPECTED)


def test_row_queries_give_the_values_worked_out_by_hand(promtool: str, tmp_path: Path) -> None:
    returncode, output = _promtool_test(promtool, tmp_path / "versions.yml", EXPECTED)
    assert returncode == 0, output
    assert "SUCCESS" in output


def test_a_wrong_expectation_fails(promtool: str, tmp_path: Path) -> None:
    """The check can fail: a version that left its role must not be shown."""
    wrong = dict(EXPECTED)
    wrong[("Canary accuracy p-value", 0)] = {
        '{model_version="1.1.0"}': 0.03, '{model_version="0.9.0"}': 0.5,
    }  # fmt: skip
    returncode, output = _promtool_test(promtool, tmp_path / "wrong.yml", wrong)
    assert returncode != 0
    assert "FAILED" in output


def test_not_a_pet_panel_reads_zero_before_the_first_one(promtool: str, tmp_path: Path) -> None:
    """The counter has a series per version only once it counts: the panel says 0, not nothing."""
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    (panel,) = [
        p for p in dashboard["panels"] if p["title"] == "Photos that are neither cat nor dog"
    ]
    document = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    series('cv_predictions_total{result="cat", model_version="1.0.0"}',
                            "0+60x10", "a"),
                ],
                "promql_expr_test": [
                    {"expr": panel["targets"][0]["expr"], "eval_time": "10m",
                     "exp_samples": [{"labels": "{}", "value": 0}]},
                ],
            }
        ],
    }  # fmt: skip
    path = tmp_path / "not_pet.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    result = run_tool(promtool, "test", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr
