"""Generated requests against every route of a real feedback process: never a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from harness.services import ServiceProcess
from services.feedback.tests.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.slow


@pytest.fixture
def api_schema(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[schemathesis.BaseSchema]:
    """The OpenAPI schema of a running feedback service on the test's database."""
    # Schemathesis keeps a `.schemathesis/` cache in the working directory: not in the tree.
    monkeypatch.chdir(tmp_path)
    env = {
        "DATABASE_URL": database_url,
        "FEEDBACK_ADMIN_TOKEN": ADMIN_TOKEN,
        "PREDICTION_WAIT_S": "0",
        "RGPD_RATE_LIMIT_PER_MINUTE": "100000",
        "RGPD_RATE_LIMIT_BURST": "100000",
        "LOG_LEVEL": "WARNING",
    }
    with ServiceProcess("feedback", env, tmp_path) as service:
        yield schemathesis.openapi.from_url(f"{service.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_generated_request_gets_a_server_error(case: schemathesis.Case) -> None:
    for headers in ({}, {"Authorization": f"Bearer {ADMIN_TOKEN}"}):
        response = case.call(headers=headers)
        case.validate_response(response, checks=(not_a_server_error,))
