"""Every service's `/docs` renders its API in a real browser, offline and under its own CSP."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from harness.services import ServiceProcess

pytestmark = [pytest.mark.browser, pytest.mark.slow]

METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}
# Recorded from the first script on, so a violation while the page is built counts too.
WATCH_CSP = """
window.__violations = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));
"""


def operations(openapi: dict[str, Any]) -> int:
    return sum(1 for item in openapi["paths"].values() for method in item if method in METHODS)


@pytest.mark.parametrize("service_name", ["inference", "feedback", "notifier", "dashboard"])
def test_the_api_docs_render_every_operation_with_nothing_from_elsewhere(
    browser: Any, service_name: str, database_url: str, model_path: Path, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": database_url, "MODEL_PATH": str(model_path), "DEV_MODE": "true"}
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.add_init_script(WATCH_CSP)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    with ServiceProcess(service_name, env, tmp_path) as service:
        expected = operations(httpx.get(service.url + "/openapi.json").json())
        assert expected > 0
        assert page.goto(service.url + "/docs").status == 200
        page.wait_for_function(
            "(n) => document.querySelectorAll('.opblock').length === n",
            arg=expected,
            timeout=30_000,
        )
        assert page.title().endswith("— API")
        icon = httpx.get(service.url + "/favicon.ico")
    assert page.evaluate("window.__violations") == []
    assert problems == []
    assert [url for url in requested if not url.startswith(service.url)] == []
    assert icon.status_code == 200
    assert icon.headers["content-type"] == "image/x-icon"
    assert Image.open(io.BytesIO(icon.content)).format == "ICO"
    context.close()
