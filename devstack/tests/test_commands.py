"""The commands README.md shows, run as a newcomer runs them while `make run` runs: nothing
set by hand, and one sentence instead of a traceback when there is nothing to reach."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import psycopg
import pytest

from devstack.components import REPO_ROOT
from devstack.tests.conftest import Devstack, shell_environment
from harness.ports import free_port
from services.common.running_stack import running_stack
from services.common.settings import DEV_INFERENCE_ADMIN_TOKEN

pytestmark = pytest.mark.slow


def test_the_database_commands_reach_the_stacks_database(devstack: Devstack) -> None:
    seeded = devstack.run("-m", "services.dashboard.seed", "--rows", "50", "--days", "1")
    assert seeded.returncode == 0, seeded.stderr
    with psycopg.connect(devstack.database_url) as connection:
        (count,) = connection.execute("SELECT count(*) FROM monitoring").fetchone()  # type: ignore[misc]
    assert count == 50
    for command in (
        ["-m", "services.common.migrate", "--create-database"],
        ["-m", "services.inference.registry_cli", "list"],
        ["-m", "services.dashboard.rollups"],
        ["-m", "services.feedback.retention", "--dry-run"],
    ):
        result = devstack.run(*command)
        assert result.returncode == 0, (command, result.stderr)
    assert "2.0.0" in devstack.run("-m", "services.inference.registry_cli", "list").stdout


def test_a_test_alert_reaches_the_stacks_notifier_with_the_dev_token(devstack: Devstack) -> None:
    sent = devstack.run("-m", "services.notifier.client", "test-alert", "--title", "hello stack")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert sent.stdout.strip() == "queued by the notifier service"
    with psycopg.connect(devstack.database_url) as connection:
        titles = [row[0] for row in connection.execute("SELECT payload::text FROM notifier_outbox")]
    assert any("hello stack" in title for title in titles)


def test_the_digest_reads_the_stacks_notifier_settings_with_its_dev_token(
    devstack: Devstack,
) -> None:
    printed = devstack.run("-m", "services.notifier.client", "digest", "--print")
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.strip()


def test_dev_mode_gives_the_admin_api_a_token_and_the_banner_prints_it(
    devstack: Devstack,
) -> None:
    (line,) = [line for line in devstack.printed().splitlines() if "admin API" in line]
    assert line.split()[0] == "inference"
    assert f"Bearer {DEV_INFERENCE_ADMIN_TOKEN}" in line
    answer = httpx.get(
        f"{devstack.url('inference')}/admin/models",
        headers={"Authorization": f"Bearer {DEV_INFERENCE_ADMIN_TOKEN}"},
    )
    assert answer.status_code == 200
    assert [row["version"] for row in answer.json()] == ["2.0.0"]


def test_without_a_stack_a_command_says_what_it_tried_in_one_sentence(tmp_path: Path) -> None:
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/predictions_feedback"
    for command in (
        ["-m", "services.dashboard.seed", "--rows", "10"],
        ["-m", "services.dashboard.rollups"],
        ["-m", "services.common.migrate"],
    ):
        result = subprocess.run(
            [sys.executable, *command],
            cwd=REPO_ROOT,
            env={**shell_environment(tmp_path / "none.json"), "DATABASE_URL": closed},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1, command
        assert "Traceback" not in result.stderr
        (sentence,) = result.stderr.strip().splitlines()
        assert sentence.startswith("cannot reach PostgreSQL (")
        assert closed.split("@")[1].split("/")[0].split(":")[1] in sentence
        assert sentence.endswith("check DATABASE_URL, or unset it to use the stack of `make run`.")


def test_a_stack_file_left_by_a_killed_stack_is_ignored(tmp_path: Path) -> None:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)  # fmt: skip
    stale = tmp_path / "stack.json"
    stale.write_text(json.dumps({"pid": int(finished.stdout), "environment": {}}))
    assert running_stack(stale) is None


def test_make_help_shows_variables_as_a_shell_writes_them() -> None:
    shown = subprocess.run(["make", "help"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert "$CV_DATASET_DIR" in shown.stdout
    assert "$$" not in shown.stdout
