"""`python -m services.common.serve`, as every deployment starts a service."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from harness.services import ServiceProcess

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("workers", [1, 2])
def test_a_blank_multiprocess_dir_means_unset(
    tmp_path: Path, database_url: str, workers: int
) -> None:
    env = {"DATABASE_URL": database_url, "DEV_MODE": "true", "PROMETHEUS_MULTIPROC_DIR": ""}
    with ServiceProcess("feedback", env, tmp_path, workers=workers) as service:
        response = httpx.get(f"{service.url}/metrics", timeout=10)
    assert response.status_code == 200
    assert "http_requests_total" in response.text or "cv_database_connected" in response.text
