"""Fixtures for the monitoring tests: the real Prometheus and Alertmanager tools."""

from __future__ import annotations

import shutil

import pytest

from monitoring.local import ALERTMANAGER_BINARIES, find_binary

INSTALL_HINT = "install Debian's prometheus and prometheus-alertmanager (.ci/run does)"


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} not installed: {INSTALL_HINT}")
    return found


@pytest.fixture(scope="session")
def promtool() -> str:
    """Path of promtool (skips with the reason when it is missing)."""
    return _tool("promtool")


@pytest.fixture(scope="session")
def amtool() -> str:
    """Path of amtool (skips with the reason when it is missing)."""
    return _tool("amtool")


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    """Path of the Prometheus server."""
    return _tool("prometheus")


@pytest.fixture(scope="session")
def alertmanager_binary() -> str:
    """Path of the Alertmanager server, under Debian's name or upstream's."""
    found = find_binary(ALERTMANAGER_BINARIES)
    if found is None:
        pytest.skip(f"alertmanager not installed: {INSTALL_HINT}")
    return found
