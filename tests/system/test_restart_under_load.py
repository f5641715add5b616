"""A service restarted under load: clients lose connections only while it is down, and the real
Prometheus reads the counter reset as a reset (no false alert, rates stay sane)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from harness.stack import Stack, running_stack, wait_for
from tests.support.images import jpeg

pytestmark = pytest.mark.slow

# Alerts a counter reset could trip if a rule used the raw counter instead of rate().
MUST_STAY_INACTIVE = {
    "CVErrorBudgetBurnFast",
    "CVErrorBudgetBurnSlow",
    "CVPredictionDrift",
    "CVConfidenceDrift",
    "CVInferenceLatencyHigh",
    "CVPredictionsDropped",
    "CVUnsatisfiedFeedbackSpike",
}


@pytest.fixture(scope="module")
def monitored(
    module_database: str, model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with running_stack(
        module_database,
        model_path,
        tmp_path_factory.mktemp("restart"),
        services=("inference", "feedback", "notifier"),
        monitoring=True,
    ) as running:
        yield running


class Load(threading.Thread):
    """Predictions back to back, each outcome with its time."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.ok = 0
        self.errors: list[tuple[float, str]] = []
        self.statuses: list[int] = []
        self._stopping = threading.Event()

    def run(self) -> None:
        photo = jpeg()
        while not self._stopping.is_set():
            try:
                # A fresh connection each time, as many clients do, so none lingers on a
                # socket the old process owned.
                response = httpx.post(
                    f"{self.url}/predict", files={"file": ("a.jpg", photo)}, timeout=15
                )
            except httpx.TransportError as error:
                self.errors.append((time.monotonic(), repr(error)))
                time.sleep(0.05)
                continue
            self.statuses.append(response.status_code)
            self.ok += response.status_code == 200

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=30)


def test_restart_under_load_is_seen_as_a_reset_not_an_incident(monitored: Stack) -> None:
    prometheus = monitored.prometheus
    assert prometheus is not None
    wait_for(lambda: prometheus.targets_up({"inference", "feedback"}), 60, "targets scraped")
    clients = [Load(monitored.url("inference")) for _ in range(2)]
    for client in clients:
        client.start()
    query = 'sum(cv_predictions_total{job="inference"})'
    wait_for(lambda: (prometheus.value(query) or 0) >= 30, 60, "predictions scraped before")

    inference = monitored.services["inference"]
    went_down = time.monotonic()
    inference.stop()
    inference.start()
    came_back = time.monotonic()
    wait_for(lambda: (prometheus.value(query) or 0) >= 30, 60, "predictions scraped after")
    for client in clients:
        client.stop()

    errors = [error for client in clients for error in client.errors]
    statuses = [status for client in clients for status in client.statuses]
    outside = [(at - went_down, what) for at, what in errors if not went_down <= at <= came_back]
    assert not outside, f"connection errors outside the restart: {outside[:3]}"
    assert set(statuses) == {200}, f"answers other than 200: {sorted(set(statuses))}"
    served = sum(client.ok for client in clients)

    resets = 'sum(resets(cv_predictions_total{job="inference"}[5m]))'
    wait_for(lambda: (prometheus.value(resets) or 0) >= 1, 30, "resets() seeing the restart")
    assert (prometheus.value('sum(resets(http_requests_total{job="inference"}[5m]))') or 0) >= 1
    # Rules evaluated with the reset inside every window, for a few cycles.
    evaluated_from = time.time()
    wait_for(lambda: last_rule_evaluation(prometheus.url) > evaluated_from + 5, 30, "evaluations")

    increase = prometheus.value('sum(increase(cv_predictions_total{job="inference"}[5m]))')
    assert increase is not None and 0.5 * served <= increase <= 1.5 * served, (increase, served)
    errors_ratio = prometheus.value('job:http_request_errors:ratio_rate5m{job="inference"}')
    assert errors_ratio == 0.0
    cat_share = prometheus.value('job:cv_predictions_cat:ratio_rate1h{job="inference"}')
    assert cat_share is not None and 0.0 <= cat_share <= 1.0
    rates = prometheus.query('rate(cv_predictions_total{job="inference"}[5m])')
    assert rates and all(float(item["value"][1]) >= 0 for item in rates)
    active = {a["labels"]["alertname"]: a["state"] for a in prometheus.alerts()}
    assert not MUST_STAY_INACTIVE & set(active), active
    assert all(state != "firing" for state in active.values()), active


def last_rule_evaluation(url: str) -> float:
    """Unix time of the oldest latest evaluation among the rule groups."""
    groups = httpx.get(f"{url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    stamps = [group["lastEvaluation"] for group in groups]
    return min(_unix(stamp) for stamp in stamps)


def _unix(stamp: str) -> float:
    """RFC 3339 with up to nanoseconds, as Prometheus writes it."""
    match = re.match(r"(?P<base>[^.Z+]+)(?:\.(?P<fraction>\d+))?", stamp)
    assert match is not None, stamp
    seconds = datetime.fromisoformat(match["base"] + "+00:00").timestamp()
    return seconds + float("0." + (match["fraction"] or "0"))
