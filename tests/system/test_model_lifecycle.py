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
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.stack import Stack, running_stack
from harness.waiting import wait_until
from services.inference.canary import LABELS_PER_CLIENT
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


def user(number: int) -> httpx.Client:
    """A user of their own address (loopback has them all): the services count per client."""
    address = f"127.0.{1 + number // 250}.{1 + number % 250}"
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=10)


def labelled_gauge(stack: Stack, version: str) -> float | None:
    families = text_string_to_metric_families(
        httpx.get(f"{stack.url('inference')}/metrics", timeout=10).text
    )
    return next(
        (
            sample.value
            for family in families
            for sample in family.samples
            if sample.name == "cv_model_feedback_labelled"
            and sample.labels["model_version"] == version
        ),
        None,
    )


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

    # Each user labels two answers: the analysis counts a few labels per client, no more.
    served: list[dict] = []
    users = 0
    while "canary" in lineup(stack) and len(served) < 600:
        for _ in range(5):
            with user(users) as client:
                served.extend(predict_and_answer(client, stack) for _ in range(2))
            users += 1
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


def test_one_client_labelling_a_sound_canary_wrong_does_not_retire_it(
    lifecycle: Stack, tmp_path: Path
) -> None:
    stack = lifecycle
    twin = build_tiny_model(tmp_path / "twin", version="tiny-3")  # the active model's twin
    assert "registered" in registry_cli(stack, "register", str(twin))
    registry_cli(stack, "canary", "tiny-3", "--share", "0.5")
    assert wait_until(lambda: lineup(stack).get("canary") == "tiny-3", timeout_s=30)

    # One client says every canary answer is wrong and every active one right, 32 of each.
    labelled = {"tiny-1": 0, "tiny-3": 0}
    with user(999) as liar:
        for _ in range(400):  # a canary retired meanwhile gets no more answers
            if min(labelled.values()) == 32:
                break
            answer = liar.post(
                f"{stack.url('inference')}/predict",
                files={"file": ("cat.jpg", jpeg(RED), "image/jpeg")},
            ).json()
            version = answer["model_version"]
            if labelled[version] == 32:
                continue
            lie = version == "tiny-3"
            sent = liar.post(
                f"{stack.url('feedback')}/feedback",
                json={
                    "prediction_id": answer["prediction_id"],
                    "satisfaction": "unsatisfied" if lie else "satisfied",
                    "rgpd_consent": True,
                    "true_label": "dog" if lie else None,
                },
            )
            assert sent.status_code == 201, sent.text
            labelled[version] += 1

    assert lineup(stack).get("canary") == "tiny-3"
    assert labelled == {"tiny-1": 32, "tiny-3": 32}
    # The analysis has counted this client's labels (a few of them), and still keeps the canary
    # rounds later.
    assert wait_until(lambda: labelled_gauge(stack, "tiny-3") == LABELS_PER_CLIENT, timeout_s=30)
    checked = {"tiny-3": labelled_gauge(stack, "tiny-3"), "tiny-1": labelled_gauge(stack, "tiny-1")}
    assert checked == {"tiny-3": LABELS_PER_CLIENT, "tiny-1": LABELS_PER_CLIENT}
    time.sleep(3)  # three more rounds of the analysis (CANARY_CHECK_INTERVAL_S=1)
    assert lineup(stack).get("canary") == "tiny-3"
    registry_cli(stack, "rollback", "--reason", "end of test")
