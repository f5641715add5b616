"""Login, open operational routes, and the refusal to run without a password."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from pydantic import ValidationError

from services.dashboard.app import create_app
from services.dashboard.settings import Settings
from services.dashboard.tests.conftest import PASSWORD, USER

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_pages_require_login_but_operational_routes_do_not(dashboard_settings: Settings) -> None:
    before = REGISTRY.get_sample_value("cv_dashboard_login_failures_total") or 0
    with TestClient(create_app(dashboard_settings)) as anonymous:
        page = anonymous.get("/monitoring/")
        assert page.status_code == 401
        assert page.headers["www-authenticate"].startswith("Basic ")
        assert page.json() == {"detail": "log in to see the monitoring dashboard"}
        assert anonymous.get("/monitoring").status_code == 401
        assert anonymous.post("/monitoring/_dash-update-component", json={}).status_code == 401
        assert anonymous.get("/monitoring/", auth=(USER, "wrong")).status_code == 401
        assert anonymous.get("/monitoring/", auth=("someone", PASSWORD)).status_code == 401
        assert anonymous.get("/health").json() == {"status": "ok"}
        assert anonymous.get("/ready").json() == {"status": "ok", "database": "ok"}
        assert anonymous.get("/metrics").status_code == 200
    after = REGISTRY.get_sample_value("cv_dashboard_login_failures_total")
    assert after == before + 5


def test_logged_in_page_is_served_with_its_csp(client: TestClient) -> None:
    page = client.get("/monitoring/")
    assert page.status_code == 200
    assert "DashRenderer" in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self' 'sha256-" in policy
    assert "unsafe-eval" not in policy
    assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    assert client.get("/monitoring/assets/style.css").status_code == 200


def test_root_and_bare_prefix_lead_to_the_dashboard(client: TestClient) -> None:
    for path in ("/", "/monitoring"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 307
        assert response.headers["location"] == "/monitoring/"


def test_unknown_paths_are_404_not_the_page(client: TestClient) -> None:
    assert client.get("/nowhere").status_code == 404
    assert client.get("/metricsx").status_code == 404


def test_metrics_can_be_switched_off(dashboard_settings: Settings) -> None:
    settings = dashboard_settings.model_copy(update={"enable_prometheus": False})
    with TestClient(create_app(settings)) as client:
        assert client.get("/metrics").status_code == 404


def test_settings_refuse_a_missing_or_placeholder_password() -> None:
    with pytest.raises(ValidationError, match="DASHBOARD_PASSWORD"):
        Settings(dashboard_password=None, dev_mode=False)
    with pytest.raises(ValidationError, match="DASHBOARD_PASSWORD"):
        Settings(dashboard_password="changeme", dev_mode=False)
    assert Settings(dashboard_password=None, dev_mode=True).login_required is False


def test_dev_mode_without_password_serves_the_page_openly(database_url: str) -> None:
    settings = Settings(database_url=database_url, dashboard_password=None, dev_mode=True)
    with TestClient(create_app(settings)) as client:
        assert client.get("/monitoring/").status_code == 200


def test_service_refuses_to_start_without_password(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "DEV_MODE": "false", "DASHBOARD_PORT": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "services.common.serve", "dashboard"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "DASHBOARD_PASSWORD must be set" in result.stderr


def test_vendored_plotly_bundle_matches_the_plotly_package() -> None:
    from plotly.offline import get_plotlyjs_version

    from services.dashboard.app import ASSETS_DIR

    header = (ASSETS_DIR / "vendor" / "plotly-basic.min.js").read_text()[:200]
    assert f"plotly.js (basic - minified) v{get_plotlyjs_version()}" in header


def test_page_loads_the_basic_plotly_bundle(client: TestClient) -> None:
    page = client.get("/monitoring/").text
    assert "/monitoring/assets/vendor/plotly-basic.min.js" in page
