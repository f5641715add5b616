"""Embedding drift end to end: real photos through the real model, the model watch, a real
Prometheus and Alertmanager, the notifier and a fake Discord.

1. the inference service (the committed model, whose card names a drift reference) and the
   notifier run with a short watch: a window of 40 answers checked every 5 s;
2. a window of ordinary validation photos: every check stored in `drift_checks` has a high
   p-value and CVEmbeddingDrift never even becomes pending;
3. a window of the other validation photos in grayscale (`ml.drift_check.grayscale`): every
   check is significant, the alert fires after its committed `for: 3m` and reaches
   Discord through Alertmanager and the notifier;
4. the ordinary photos again: the checks turn quiet and the resolution reaches Discord.
Only intervals are shortened (scrape/evaluation, Alertmanager's group timers, the watch's
window and interval); the rules, their `for:`, and the routes are the committed ones. Feedback
and the dashboard do not run: their jobs are down, and nothing here looks at their alerts.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from PIL import Image

from harness.waiting import wait_until
from ml.drift_check import grayscale
from monitoring.tests.conftest import MonitoredStack
from monitoring.tests.grafana_rows import row_queries
from tests.support.fixtures import COMMITTED_MODEL

# About 3.5 min: 20 s of start, 15 s of ordinary checks, the 3 min `for:`, 10 s to resolve.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

ALERT = "CVEmbeddingDrift"
P_VALUE_GAUGE = "cv_embedding_drift_p_value"
WINDOW = 40
INTERVAL_S = 5
ALPHA = 0.01
# The committed `for:` of CVEmbeddingDrift.
FOR_S = 180
# The ordinary window scores p-values near 1, far from ALPHA: "quiet" is asserted with a wide
# margin, not left to the test's 1 % false-alarm rate.
QUIET_P = 0.05


@pytest.fixture
def stack_services() -> tuple[str, ...]:
    return ("notifier", "inference")


@pytest.fixture
def stack_env(dataset_dir: Path) -> dict[str, str]:
    # dataset_dir first: without the photos the test skips before anything starts.
    if not COMMITTED_MODEL.exists():
        pytest.skip(f"{COMMITTED_MODEL} is missing: the drift test needs its embedding output")
    return {
        "MODEL_PATH": str(COMMITTED_MODEL),
        "DRIFT_WINDOW": str(WINDOW),
        "DRIFT_INTERVAL_S": str(INTERVAL_S),
        "DRIFT_ALPHA": str(ALPHA),
        "DRIFT_PERMUTATIONS": "200",
        "DRIFT_SAMPLE_SHARE": "1",
    }


def _photos(dataset_dir: Path) -> tuple[list[bytes], list[bytes]]:
    """Two disjoint windows of validation photos, cats and dogs alike: one as taken, the other
    in grayscale, encoded again as a camera would.

    Not `dark`: on these 40 photos it scores only about 1.6 times the usual threshold, and
    about one check in 200 falls under it, which would restart the alert's `for:`; grayscale
    scores 3 times it, beyond every one of 5 000 permutations.
    """
    paths = sorted((dataset_dir / "val").glob("*/*.jpg"))
    assert len(paths) >= 2 * WINDOW, f"{dataset_dir}/val holds {len(paths)} photos"
    ordinary = [path.read_bytes() for path in paths[0 : 2 * WINDOW : 2]]
    shifted = []
    for path in paths[1 : 2 * WINDOW : 2]:
        buffer = io.BytesIO()
        grayscale(Image.open(path).convert("RGB")).save(buffer, "JPEG", quality=90)
        shifted.append(buffer.getvalue())
    return ordinary, shifted


def _post_window(stack: MonitoredStack, photos: Sequence[bytes]) -> datetime:
    """Post one photo per request, a few at a time; once every embedding is stored, the
    database time from which checks see only this window."""
    url = f"{stack.services['inference'].url}/predict"

    def predict(client: httpx.Client, photo: bytes) -> uuid.UUID:
        response = client.post(url, files={"file": ("photo.jpg", photo, "image/jpeg")})
        assert response.status_code == 200, response.text
        return uuid.UUID(response.json()["prediction_id"])

    with httpx.Client(timeout=60) as client, ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(lambda photo: predict(client, photo), photos))
    with psycopg.connect(stack.database_url, autocommit=True) as connection:

        def stored() -> bool:
            row = connection.execute(
                "SELECT count(*) FROM prediction_embeddings WHERE prediction_id = ANY(%s)",
                (ids,),
            ).fetchone()
            return row is not None and row[0] == len(ids)

        assert wait_until(stored, 30, interval_s=0.2), "the embeddings never reached PostgreSQL"
    return _database_now(stack)


def _checks(stack: MonitoredStack, since: datetime, until: datetime | None = None) -> list[Any]:
    """The full-window checks stored after `since` (and before `until`), oldest first."""
    with psycopg.connect(stack.database_url) as connection:
        return connection.execute(
            "SELECT at, window_size, drift_score, drift_threshold, drift_p_value"
            " FROM drift_checks WHERE drift_p_value IS NOT NULL AND at > %s"
            " AND (%s::timestamptz IS NULL OR at < %s) ORDER BY at",
            (since, until, until),
        ).fetchall()


def _wait_for_checks(stack: MonitoredStack, since: datetime, count: int) -> list[Any]:
    assert wait_until(lambda: len(_checks(stack, since)) >= count, INTERVAL_S * (count + 3)), (
        f"fewer than {count} drift checks since {since}"
    )
    return _checks(stack, since)


def _alert_states(stack: MonitoredStack) -> list[str]:
    return [
        sample["metric"]["alertstate"]
        for sample in stack.prometheus.query(f'ALERTS{{alertname="{ALERT}"}}')
    ]


def _arrival(stack: MonitoredStack, needle: str) -> datetime:
    """When the fake Discord accepted the first message holding `needle`."""
    for message in stack.discord.messages():
        if needle in json.dumps(message, ensure_ascii=False):
            return datetime.fromisoformat(message["timestamp"])
    raise AssertionError(f"no Discord message holds {needle!r}")


def _database_now(stack: MonitoredStack) -> datetime:
    with psycopg.connect(stack.database_url) as connection:
        row = connection.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    now: datetime = row[0]
    return now


def test_embedding_drift_alert_fires_and_resolves_through_discord(
    monitored_stack: MonitoredStack, dataset_dir: Path
) -> None:
    stack, prometheus = monitored_stack, monitored_stack.prometheus
    started = time.monotonic()
    ordinary, shifted = _photos(dataset_dir)
    rules = httpx.get(f"{prometheus.url}/api/v1/rules", params={"type": "alert"}).json()
    loaded = {rule["name"] for group in rules["data"]["groups"] for rule in group["rules"]}
    assert ALERT in loaded, "the committed rules have no CVEmbeddingDrift"
    assert wait_until(lambda: prometheus.targets_up({"inference", "notifier"}), 30)

    # Ordinary photos: quiet checks, and not even a pending alert.
    quiet_from = time.time()
    ordinary_ready = _post_window(stack, ordinary)
    _wait_for_checks(stack, ordinary_ready, 2)
    assert wait_until(
        lambda: (prometheus.value("max(cv_embedding_drift_p_value)") or 0) > QUIET_P, 15
    ), "Prometheus never saw the quiet window's p-value"
    pending = prometheus.range(
        f'ALERTS{{alertname="{ALERT}"}}', seconds=time.time() - quiet_from, step_s=1
    )
    assert pending == [], "CVEmbeddingDrift went pending on ordinary photos"
    versions = {sample["metric"]["model_version"] for sample in prometheus.query(P_VALUE_GAUGE)}
    assert len(versions) == 1, versions
    (version,) = versions

    # Grayscale photos: significant checks; the alert waits out its `for:`, then reaches Discord.
    drift_from = _database_now(stack)
    quiet = _checks(stack, ordinary_ready, until=drift_from)
    drift_ready = _post_window(stack, shifted)
    assert wait_until(lambda: "pending" in _alert_states(stack), INTERVAL_S * 3 + 10), (
        "CVEmbeddingDrift never went pending on grayscale photos"
    )
    assert wait_until(lambda: stack.message_about(f"[FIRING] {ALERT}"), FOR_S + 60, interval_s=1), (
        stack.discord_texts()
    )
    fired = stack.message_about(f"[FIRING] {ALERT}") or ""
    summary = "The photos a model version sees no longer look like the ones it was trained on."
    assert summary in fired
    assert f"model {version}'s last window" in fired
    assert "warning" in fired
    assert "· notifier" in fired, "warnings travel through the notifier (its embed footer)"
    # The first significant check may have seen a window not yet all gray: it starts `for:`.
    first_significant = min(row[0] for row in _checks(stack, drift_from) if row[4] < ALPHA)
    waited = _arrival(stack, f"[FIRING] {ALERT}") - first_significant
    assert waited >= timedelta(seconds=FOR_S), f"fired {waited} after the first drifted check"
    assert not stack.message_about(f"[RESOLVED] {ALERT}")

    # Ordinary photos again: the window is quiet and the resolution arrives.
    recovery_from = _database_now(stack)
    drifted = _checks(stack, drift_ready, until=recovery_from)
    recovery_ready = _post_window(stack, ordinary)
    assert wait_until(
        lambda: stack.message_about(f"[RESOLVED] {ALERT}"), INTERVAL_S * 3 + 30, interval_s=1
    ), stack.discord_texts()
    resolved = stack.message_about(f"[RESOLVED] {ALERT}") or ""
    assert "· notifier" in resolved
    # One living message: the firing one, edited to resolved.
    about_drift = [text for text in stack.discord_texts() if ALERT in text]
    assert len(about_drift) == 1, f"not one message edited to resolved: {about_drift}"
    (message,) = [m for m in stack.discord.messages() if ALERT in json.dumps(m)]
    assert message["edits"] >= 1
    recovered = _wait_for_checks(stack, recovery_ready, 1)

    # What the watch stored, phase by phase (checks of a window still filling left out).
    assert len(drifted) >= FOR_S // INTERVAL_S // 2, drifted
    for at, window, score, threshold, p_value in quiet + recovered:
        assert window == WINDOW
        assert p_value > QUIET_P, (at, p_value)
        assert score <= threshold, (at, score, threshold)
    for at, window, score, threshold, p_value in drifted:
        assert window == WINDOW
        assert p_value < ALPHA, (at, p_value)
        assert score > threshold, (at, score, threshold)
    # The Grafana row draws these checks: its drift and estimate queries have data for the version.
    for (title, _), expr in row_queries("Model watch").items():
        if "cv_embedding_drift_" in expr or "cv_estimated_accuracy" in expr:
            drawn = {sample["metric"].get("model_version") for sample in prometheus.query(expr)}
            assert drawn == {version}, (title, expr, drawn)
    elapsed = time.monotonic() - started
    print(
        f"drift scenario: {elapsed:.0f} s, {len(quiet)} quiet, {len(drifted)} drifted and "
        f"{len(recovered)} recovered checks, {len(stack.discord.messages())} Discord messages"
    )
