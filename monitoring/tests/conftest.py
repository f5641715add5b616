"""Fixtures for the monitoring tests: the real Prometheus and Alertmanager tools."""

from __future__ import annotations

import shutil

import pytest

from harness.monitoring import INSTALL_HINT
from harness.monitoring import alertmanager_binary as find_alertmanager
from harness.monitoring import prometheus_binary as find_prometheus


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
    found = find_prometheus()
    if found is None:
        pytest.skip(f"prometheus not installed: {INSTALL_HINT}")
    return found


@pytest.fixture(scope="session")
def alertmanager_binary() -> str:
    """Path of the Alertmanager server, under Debian's name or upstream's."""
    found = find_alertmanager()
    if found is None:
        pytest.skip(f"alertmanager not installed: {INSTALL_HINT}")
    return found
