"""Fixtures of the deployment checks."""

from __future__ import annotations

from typing import Any

import pytest

from deploy.tests import compose_file as compose

# Real-looking values for the secrets `.env.example` leaves as placeholders, so the settings
# validators (which refuse placeholders outside DEV_MODE) see what an operator would give them.
TEST_SECRETS = {
    "POSTGRES_PASSWORD": "pg-3f9c1e7a2b",
    "NOTIFIER_TOKEN": "notifier-8d1f2a9c4e",
    "FEEDBACK_ADMIN_TOKEN": "feedback-5b7e3c1d9a",
    "DASHBOARD_PASSWORD": "dashboard-2c8f6a4e1b",
    "GRAFANA_PASSWORD": "grafana-9e1b3d5f7a",
}


@pytest.fixture(scope="session")
def env_example() -> dict[str, str]:
    """`.env.example` as Compose would read it after `cp .env.example .env`."""
    return compose.read_env_file()


@pytest.fixture(scope="session")
def operator_env(env_example: dict[str, str]) -> dict[str, str]:
    """`.env.example` with its secrets filled in, as an operator's `.env` would be."""
    return {**env_example, **TEST_SECRETS}


@pytest.fixture(scope="session")
def compose_raw() -> dict[str, Any]:
    """docker-compose.yml as YAML gives it."""
    return compose.load()


@pytest.fixture(scope="session")
def compose_file(operator_env: dict[str, str]) -> dict[str, Any]:
    """docker-compose.yml interpolated with the operator's `.env`."""
    resolved: dict[str, Any] = compose.interpolate(compose.load(), operator_env)
    return resolved
