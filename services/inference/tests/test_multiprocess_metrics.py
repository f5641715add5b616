"""With two worker processes, /metrics still counts every prediction exactly once."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.services import ServiceProcess
from tests.support.images import jpeg

pytestmark = pytest.mark.slow


def samples(url: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    families = text_string_to_metric_families(httpx.get(f"{url}/metrics").text)
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in families
        for sample in family.samples
        if sample.name == name
    }


def test_metrics_add_up_across_two_workers(
    tmp_path: Path, database_url: str, model_path: Path
) -> None:
    metrics_dir = tmp_path / "metrics"
    env = {
        "DATABASE_URL": database_url,
        "MODEL_PATH": str(model_path),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    with ServiceProcess("inference", env, tmp_path, workers=2) as service:
        worker_pids = {path.stem.rsplit("_", 1)[-1] for path in metrics_dir.glob("counter_*.db")}
        assert len(worker_pids) == 2
        answers = []
        # New connections each time so the kernel spreads them over both workers.
        for index in range(40):
            color = (250, 10, 10) if index % 4 else (10, 10, 250)
            answers.append(
                httpx.post(
                    f"{service.url}/predict",
                    files={"file": ("a.jpg", jpeg(color), "image/jpeg")},
                    headers={"connection": "close"},
                ).json()["prediction"]
            )
        for _ in range(5):  # every scrape, whichever worker answers it, sees the same totals
            predictions = samples(service.url, "cv_predictions_total")
            assert sum(predictions.values()) == 40
            for label in ("cat", "dog"):
                counted = sum(n for labels, n in predictions.items() if ("result", label) in labels)
                assert counted == answers.count(label)
            assert sum(samples(service.url, "cv_inference_time_seconds_count").values()) == 40
            requests = samples(service.url, "http_requests_total")
            predict_requests = sum(
                value for labels, value in requests.items() if ("handler", "/predict") in labels
            )
            assert predict_requests == 40
            assert samples(service.url, "cv_database_connected") == {(): 1.0}
