"""Under `make run`, alert links in the notifier's messages lead to the Prometheus and
Alertmanager it runs, on their configured ports, unless a person names others."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.tests.conftest import start_devstack, stop_devstack

pytestmark = pytest.mark.slow


def _environment_of(pid: int) -> dict[str, str]:
    """The environment a running process was started with."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(entry.split("=", 1) for entry in raw.decode().split("\0") if "=" in entry)


def _notifier_pid(parent: int) -> int:
    """The pid of the notifier `parent` started."""
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        # The parent pid is the second field after the command name in parentheses.
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and b"notifier" in command:
            return int(entry.name)
    raise AssertionError(f"pid {parent} started no notifier")


def test_alert_links_lead_to_the_monitoring_tools_on_their_configured_ports(
    tmp_path: Path, database_url: str
) -> None:
    prometheus = 19_090
    env = {
        "PROMETHEUS_URL": f"http://localhost:{prometheus}",
        "ALERTMANAGER_PUBLIC_URL": "https://alerts.example.org",
    }
    stack = start_devstack(tmp_path, database_url, env)
    try:
        notifier = _environment_of(_notifier_pid(stack.process.pid))
    finally:
        stop_devstack(stack)
    assert notifier["PROMETHEUS_PUBLIC_URL"] == f"http://localhost:{prometheus}"
    # The person's own setting is kept.
    assert notifier["ALERTMANAGER_PUBLIC_URL"] == "https://alerts.example.org"
