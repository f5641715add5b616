"""A real `python -m devstack` (without Prometheus and Alertmanager), on free ports, with its
stack file in a folder of the test's own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devstack.components import REPO_ROOT
from devstack.monitoring import LocalSettings
from devstack.ports import port_holder, port_is_free
from harness.ports import free_port
from harness.waiting import wait_until
from tests.support.postgres import fresh_database

# What a person's shell does not have before following the README.
UNSET = ("DATABASE_URL", "NOTIFIER_URL", "NOTIFIER_TOKEN", "INFERENCE_ADMIN_TOKEN", "DEV_MODE")
SERVICES = ("inference", "feedback", "notifier", "dashboard")


def shell_environment(stack_file: Path) -> dict[str, str]:
    """A newcomer's environment: none of the stack's variables set by hand."""
    env = {k: v for k, v in os.environ.items() if k not in UNSET and k != "FORCE_COLOR"}
    return {**env, "STACK_FILE": str(stack_file), "NO_COLOR": "1"}


@dataclass
class Devstack:
    """A running `python -m devstack` and what it printed."""

    process: subprocess.Popen[str]
    output: Path
    stack_file: Path
    database_url: str
    ports: dict[str, int]

    def url(self, service: str) -> str:
        """The base URL of one service."""
        return f"http://127.0.0.1:{self.ports[service]}"

    def printed(self) -> str:
        """Everything it has printed so far."""
        return self.output.read_text()

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A documented command, run as a newcomer would while the stack runs."""
        return subprocess.run(
            [sys.executable, *args],
            cwd=REPO_ROOT,
            env=shell_environment(self.stack_file),
            capture_output=True,
            text=True,
            timeout=120,
        )


def start_devstack(
    tmp_path: Path,
    database_url: str,
    extra_env: dict[str, str] | None = None,
    ports: dict[str, int] | None = None,
) -> Devstack:
    """Start `python -m devstack --no-monitoring` (on free ports unless given) and wait until
    inference answers."""
    ports = ports or {name: free_port() for name in SERVICES}
    stack_file = tmp_path / "stack.json"
    output = tmp_path / "devstack.out"
    env = {
        **shell_environment(stack_file),
        "DATABASE_URL": database_url,
        "LOG_FORMAT": "console",
        **{f"{name.upper()}_PORT": str(port) for name, port in ports.items()},
        **(extra_env or {}),
    }
    with output.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-u", "-m", "devstack", "--no-monitoring"],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    stack = Devstack(process, output, stack_file, database_url, ports)

    def inference_ready() -> bool:
        assert process.poll() is None, stack.printed()
        try:
            return httpx.get(f"{stack.url('inference')}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    assert wait_until(inference_ready, timeout_s=90), stack.printed()
    return stack


def stop_devstack(stack: Devstack) -> None:
    """Ctrl-C, as a person stops it."""
    stack.process.send_signal(signal.SIGINT)
    try:
        stack.process.wait(timeout=40)
    except subprocess.TimeoutExpired:
        stack.process.kill()
        stack.process.wait()


@pytest.fixture(scope="module")
def devstack(
    pg_admin_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Devstack]:
    """One stack for the module's tests, on a database of its own."""
    with fresh_database(pg_admin_url, template_database, "cv_devstack") as database_url:
        stack = start_devstack(tmp_path_factory.mktemp("devstack"), database_url)
        yield stack
        stop_devstack(stack)


@pytest.fixture(scope="module")
def documented_devstack(
    pg_admin_url: str, template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Devstack]:
    """One stack on the ports the docs name (localhost:8000 …), skipped when one is taken."""
    ports = {name: LocalSettings.model_fields[f"{name}_port"].default for name in SERVICES}
    for name, port in ports.items():
        if not port_is_free(port):
            pytest.skip(
                f"the docs send their commands to {name} on port {port}, "
                f"which {port_holder(port)} holds"
            )
    with fresh_database(pg_admin_url, template_database, "cv_devstack") as database_url:
        folder = tmp_path_factory.mktemp("devstack")
        # The versions the docs register go to a store of the test's own, not the checkout's.
        store = {"MODEL_STORE_DIR": str(folder / "store")}
        stack = start_devstack(folder, database_url, extra_env=store, ports=ports)
        yield stack
        stop_devstack(stack)
