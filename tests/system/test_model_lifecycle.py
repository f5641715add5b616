"""The model lifecycle end to end, through real processes: a second model is registered with
the CLI, shadowed, sent half the traffic as a canary, judged worse from real user feedback,
rolled back automatically, and the on-call channel is told why, with the figures.

The active model is the tiny colour model (red = cat); the candidate is its inverse, so every
red photo it answers is wrong, and users say so through the feedback service.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from harness.stack import Stack, running_stack
from harness.waiting import wait_until
from tests.support.images import jpeg
from tests.support.tiny_model import build_tiny_model

pytestmark = pytest.mark.slow

RED = (250, 10, 10)


@pytest.fixture(scope="module")
def lifecycle(
    module_database: str, tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("lifecycle")
    with running_stack(
        module_database,
        tiny_model_path,
        work,
        monitoring=True,
        announce=True,
        services=("inference", "feedback", "notifier"),
        extra_env={
            "MODEL_STORE_DIR": str(work / "model-store"),
            "MODEL_REGISTRY_POLL_S": "0.3",
            "CANARY_CHECK_INTERVAL_S": "1",
            "ROLLBACK_MIN_LABELLED": "20",
        },
    ) as stack:
        yield stack


def registry_cli(stack: Stack, *args: str) -> str:
    env = {
        **os.environ,
        "DATABASE_URL": stack.database_url,
        "MODEL_STORE_DIR": stack.services["inference"].env["MODEL_STORE_DIR"],
        "NOTIFIER_URL": stack.url("notifier"),
        "NOTIFIER_TOKEN": stack.secrets.notifier_token,
    }
    done = subprocess.run(
        [sys.executable, "-m", "services.inference.registry_cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def predict_and_answer(client: httpx.Client, stack: Stack) -> dict:
    """A user uploads a red photo (a cat) and says whether the answer was right."""
    answer = client.post(
        f"{stack.url('inference')}/predict",
        files={"file": ("cat.jpg", jpeg(RED), "image/jpeg")},
        data={"rgpd_consent": "true"},
    ).json()
    right = answer["prediction"] == "cat"
    feedback = client.post(
        f"{stack.url('feedback')}/feedback",
        json={
            "prediction_id": answer["prediction_id"],
            "satisfaction": "satisfied" if right else "unsatisfied",
            "rgpd_consent": True,
            "true_label": None if right else "cat",
        },
    )
    assert feedback.status_code == 201, feedback.text
    return answer


def lineup(stack: Stack) -> dict[str, str]:
    return httpx.get(f"{stack.url('inference')}/model", timeout=10).json()["lineup"]


def test_a_worse_canary_is_rolled_back_automatically_and_discord_says_why(
    lifecycle: Stack, tmp_path: Path
) -> None:
    stack = lifecycle
    candidate = build_tiny_model(tmp_path / "candidate", version="tiny-2", inverted=True)
    assert "registered" in registry_cli(stack, "register", str(candidate))

    # Shadow: the candidate scores every answered photo, apart, never shown.
    registry_cli(stack, "shadow", "tiny-2")
    assert wait_until(lambda: lineup(stack).get("shadow") == "tiny-2", timeout_s=30)
    with httpx.Client(timeout=10) as client:
        shadowed = [predict_and_answer(client, stack) for _ in range(5)]
    assert {answer["model_version"] for answer in shadowed} == {"tiny-1"}
    with psycopg.connect(stack.database_url) as connection:

        def shadow_rows() -> int:
            query = "SELECT count(*) FROM shadow_predictions WHERE model_version = 'tiny-2'"
            return connection.execute(query).fetchone()[0]

        assert wait_until(lambda: shadow_rows() == 5, timeout_s=30)

    # Canary at 50 %, over HTTP with the admin token.
    response = httpx.post(
        f"{stack.url('inference')}/admin/models/tiny-2/canary",
        json={"share": 0.5, "reason": "end-to-end test"},
        headers=stack.inference_admin_auth,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert lineup(stack) == {"active": "tiny-1", "canary": "tiny-2"}

    served: list[dict] = []
    with httpx.Client(timeout=10) as client:
        while "canary" in lineup(stack) and len(served) < 600:
            served.extend(predict_and_answer(client, stack) for _ in range(10))
    by_version = {v: [a for a in served if a["model_version"] == v] for v in ("tiny-1", "tiny-2")}
    assert "canary" not in lineup(stack), "the canary was never rolled back"
    # Both sides had their minimum of labelled answers before the test could conclude.
    assert len(by_version["tiny-2"]) >= 20
    assert all(answer["prediction"] == "dog" for answer in by_version["tiny-2"])
    assert all(answer["prediction"] == "cat" for answer in by_version["tiny-1"])

    with psycopg.connect(stack.database_url) as connection:
        (role,) = connection.execute(
            "SELECT role FROM model_versions WHERE version = 'tiny-2'"
        ).fetchone()
        actor, reason, figures = connection.execute(
            "SELECT actor, reason, figures FROM model_events"
            " WHERE version = 'tiny-2' ORDER BY id DESC LIMIT 1"
        ).fetchone()
    assert role == "retired"
    assert actor == "canary-analysis"
    assert "automatic rollback" in reason and "z-test" in reason
    assert figures["canary"]["accuracy"] == 0.0
    assert figures["active"]["accuracy"] == 1.0
    assert figures["p_value"] < 0.05

    # The on-call channel hears about each step, the rollback with its figures.
    def titles() -> list[str]:
        return [
            embed.get("title", "")
            for message in stack.discord.messages()
            for embed in message.get("embeds", [])
        ]

    assert wait_until(
        lambda: any("Canary tiny-2 rolled back" in title for title in titles()), timeout_s=60
    ), titles()
    rollback = next(
        embed
        for message in stack.discord.messages()
        for embed in message.get("embeds", [])
        if "Canary tiny-2 rolled back" in embed.get("title", "")
    )
    assert "accuracy 0.0%" in rollback["description"]
    assert "100.0%" in rollback["description"]
    assert any("registered → shadow" in title for title in titles())

    # Prometheus scraped the rollback and the per-version answers.
    prometheus = stack.prometheus
    assert prometheus is not None
    assert wait_until(
        lambda: prometheus.value('sum(cv_model_rollbacks_total{reason="accuracy"})') == 1,
        timeout_s=60,
    )
    versions = {
        item["metric"]["model_version"]
        for item in prometheus.query("sum by (model_version) (cv_predictions_total)")
    }
    assert versions == {"tiny-1", "tiny-2"}
    # Every answer after the rollback comes from the active model.
    with httpx.Client(timeout=10) as client:
        after = [predict_and_answer(client, stack) for _ in range(5)]
    assert {answer["model_version"] for answer in after} == {"tiny-1"}
