"""The "Model watch" row of the Grafana dashboard: its PromQL evaluated by promtool.

Series shaped like inference's model-watch gauges on two replicas (every replica shows the
newest stored check): an active model, a canary, and a version rolled back from the canary role
whose gauges linger and must not be drawn.
"""

from __future__ import annotations

from pathlib import Path

from monitoring.tests.grafana_rows import Expected, promtool_test, row_queries, series

ROW = "Model watch"
MINUTES = 10
EVAL = f"{MINUTES}m"
INFO = {("1.0.0", "active"): 1, ("1.1.0", "canary"): 1, ("0.9.0", "canary"): 0}
# Per version (1.0.0, 1.1.0, 0.9.0): the newest check's figures.
GAUGES = {
    "cv_embedding_drift_score": (0.002, 0.03, 0.5),
    "cv_embedding_drift_threshold": (0.01, 0.012, 0.01),
    "cv_embedding_drift_p_value": (0.4, 0.002, 0.001),
    "cv_estimated_accuracy_ratio": (0.98, 0.9, 0.5),
    "cv_estimated_accuracy_stderr": (0.01, 0.02, 0.1),
    "cv_labelled_accuracy_ratio": (0.97, 0.8, 0.1),
    "cv_labelled_estimated_accuracy_ratio": (0.98, 0.92, 0.9),
    "cv_labelled_estimated_accuracy_stderr": (0.005, 0.03, 0.01),
    "cv_calibration_error": (0.02, 0.1, 0.5),
    "cv_labelled_predictions": (400, 60, 3),
    # Seconds since the test's start: checked 30 s and 60 s before EVAL, the old one long ago.
    "cv_model_watch_last_check_timestamp_seconds": (570, 540, 100),
}
VERSIONS = ("1.0.0", "1.1.0", "0.9.0")


def served(first: float, second: float) -> dict[str, float]:
    return {'{model_version="1.0.0"}': first, '{model_version="1.1.0"}': second}


EXPECTED: Expected = {
    ("Embedding drift score and its threshold", 0): served(0.002, 0.03),
    ("Embedding drift score and its threshold", 1): served(0.01, 0.012),
    ("Embedding drift p-value", 0): served(0.4, 0.002),
    ("Estimated accuracy (no labels) and feedback accuracy", 0): served(0.98, 0.9),
    # The band: ±1.96 standard errors, computed in the same order as PromQL does.
    ("Estimated accuracy (no labels) and feedback accuracy", 1): served(
        0.98 + 1.96 * 0.01, 0.9 + 1.96 * 0.02
    ),
    ("Estimated accuracy (no labels) and feedback accuracy", 2): served(
        0.98 - 1.96 * 0.01, 0.9 - 1.96 * 0.02
    ),
    ("Estimated accuracy (no labels) and feedback accuracy", 3): served(0.97, 0.8),
    ("Calibration: estimate minus feedback accuracy, in standard errors", 0): served(
        (0.98 - 0.97) / 0.005,
        (0.92 - 0.8) / 0.03,  # about 2 and 4 standard errors
    ),
    ("Calibration error (ECE) of labelled answers", 0): served(0.02, 0.1),
    ("Calibration error (ECE) of labelled answers", 1): served(400, 60),
    ("Time since the newest check", 0): {"{}": 30},
}


def _input_series() -> list[dict[str, str]]:
    found = []
    for instance in ("inference-a:8000", "inference-b:8000"):
        for name, values in GAUGES.items():
            for version, value in zip(VERSIONS, values, strict=True):
                found.append(
                    series(f'{name}{{model_version="{version}"}}', f"{value:g}x{MINUTES}", instance)
                )
        for (version, role), value in INFO.items():
            info = (
                f'cv_model_info{{name="cat-dog", version="{version}", sha256="x", role="{role}"}}'
            )
            found.append(series(info, f"{value}x{MINUTES}", instance))
    return found


def _promtool_test(promtool: str, path: Path, expected: Expected) -> tuple[int, str]:
    return promtool_test(promtool, path, ROW, _input_series(), expected, EVAL)


def test_every_query_of_the_row_is_checked() -> None:
    assert set(row_queries(ROW)) == set(EXPECTED)


def test_row_queries_give_the_values_worked_out_by_hand(promtool: str, tmp_path: Path) -> None:
    returncode, output = _promtool_test(promtool, tmp_path / "watch.yml", EXPECTED)
    assert returncode == 0, output
    assert "SUCCESS" in output


def test_a_rolled_back_version_is_not_drawn(promtool: str, tmp_path: Path) -> None:
    """The check can fail: 0.9.0's lingering drift score must not be on the graph."""
    wrong = dict(EXPECTED)
    wrong[("Embedding drift score and its threshold", 0)] = {
        **served(0.002, 0.03), '{model_version="0.9.0"}': 0.5,
    }  # fmt: skip
    returncode, output = _promtool_test(promtool, tmp_path / "wrong.yml", wrong)
    assert returncode != 0
    assert "FAILED" in output
