"""A port the stack needs is taken: `make run` says which, by whom and how to choose another,
and starts the rest."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import httpx
import pytest

from devstack.tests.conftest import start_devstack, stop_devstack

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
