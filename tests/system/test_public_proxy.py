"""The compose proxy (`deploy/docker/nginx.conf`) in front of a real feedback process.

The committed configuration runs under the local nginx with only what compose supplies
replaced: the ports it listens on and the address of the service behind it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.ports import free_port
from harness.services import REPO_ROOT, ServiceProcess
from harness.waiting import wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed"),
]

CONFIG = REPO_ROOT / "deploy" / "docker" / "nginx.conf"
BURST = 5


@pytest.fixture
def feedback(tmp_path: Path, database_url: str) -> Iterator[ServiceProcess]:
    env = {
        "DATABASE_URL": database_url,
        "DEV_MODE": "true",
        "PREDICTION_WAIT_S": "0",
        "RGPD_RATE_LIMIT_BURST": str(BURST),
        "RGPD_RATE_LIMIT_PER_MINUTE": "1",
        "FORWARDED_ALLOW_IPS": "127.0.0.1",
    }
    with ServiceProcess("feedback", env, tmp_path) as service:
        yield service


@pytest.fixture
def proxy(tmp_path: Path, feedback: ServiceProcess) -> Iterator[str]:
    """nginx with the committed config, its feedback server in front of `feedback`."""
    port = free_port()
    text = CONFIG.read_text().replace("pid /tmp/nginx.pid;", f"pid {tmp_path}/nginx.pid;")
    text = text.replace("listen 8001;", f"listen 127.0.0.1:{port};")
    text = text.replace("set $service feedback:8001;", f"set $service 127.0.0.1:{feedback.port};")
    # The other servers are compose's; nothing listens where they would.
    text = re.sub(r"listen (8000|8050);", lambda m: f"listen 127.0.0.1:{free_port()};", text)
    config = tmp_path / "nginx.conf"
    config.write_text(text)
    process = subprocess.Popen(
        ["nginx", "-c", str(config), "-p", str(tmp_path), "-g", "daemon off;"],
        stderr=(tmp_path / "nginx.log").open("wb"),
    )
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            httpx.get(f"{url}/feedback", timeout=1)
        except httpx.TransportError:
            return False
        return True

    try:
        assert wait_until(answers, timeout_s=10), (tmp_path / "nginx.log").read_text()
        yield url
    finally:
        process.terminate()
        process.wait(10)


def test_internal_routes_are_not_reachable_through_the_proxy(
    proxy: str, feedback: ServiceProcess
) -> None:
    for path in ("/metrics", "/ready", "/health", "/docs", "/openapi.json", "/admin/feedback"):
        assert httpx.get(f"{proxy}{path}", timeout=10).status_code == 404, path
        assert httpx.get(f"{feedback.url}{path}", timeout=10).status_code != 404, path
    answer = httpx.get(f"{proxy}/predictions/{uuid.uuid4()}", timeout=10)
    assert answer.status_code == 404
    assert answer.json()["detail"]  # feedback's own answer, passed through


def test_a_client_cannot_choose_its_address_through_the_proxy(proxy: str) -> None:
    with httpx.Client(timeout=10) as client:
        statuses = Counter(
            client.get(
                f"{proxy}/predictions/{uuid.uuid4()}",
                headers={"X-Forwarded-For": f"203.0.113.{n}"},
            ).status_code
            for n in range(20)
        )
    assert statuses[429] >= 20 - BURST, statuses
