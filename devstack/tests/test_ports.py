"""A port the stack needs is taken: `make run` says which, by whom and how to choose another,
and starts the rest."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from devstack.tests.conftest import REPO_ROOT, shell_environment, start_devstack, stop_devstack

pytestmark = pytest.mark.slow


def test_a_busy_port_is_named_with_its_holder_and_the_rest_starts(
    tmp_path: Path, database_url: str
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        stack = start_devstack(tmp_path, database_url, {"FEEDBACK_PORT": str(busy)})
        try:
            printed = stack.printed()
            (line,) = [line for line in printed.splitlines() if line.startswith("feedback not")]
            assert f"port {busy} is taken by pid {os.getpid()} (" in line
            assert f"FEEDBACK_PORT={busy + 1} make run" in line
            for service in ("inference", "notifier"):
                assert httpx.get(f"{stack.url(service)}/health").status_code == 200
            assert "feedback " not in printed.split("cat-dog stack running:")[1].split("Ctrl-C")[0]
            assert stack.process.poll() is None
        finally:
            stop_devstack(stack)


def test_a_second_make_run_says_a_stack_already_runs(tmp_path: Path, database_url: str) -> None:
    stack = start_devstack(tmp_path, database_url)
    try:
        second = subprocess.run(
            [sys.executable, "-m", "devstack", "--no-monitoring"],
            cwd=REPO_ROOT, env=shell_environment(stack.stack_file),
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert second.returncode == 1
        assert f"a stack of `make run` already runs here (pid {stack.process.pid}" in second.stderr
        assert stack.stack_file.exists(), "the first stack's record is kept"
        assert httpx.get(f"{stack.url('inference')}/health").status_code == 200
    finally:
        stop_devstack(stack)
