"""What a client does wrong counts as 4xx, what the server fails at as 5xx, each exactly once.

The 5xx share of `http_requests_total` is the availability objective's error budget
(`job:http_request_errors:ratio_*`, `CVErrorBudgetBurnFast`): an anonymous client must not be
able to spend it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.services import ServiceProcess
from harness.stack import wait_for
from tests.system.test_hostile_http import answered, open_upload, read_status

pytestmark = pytest.mark.slow


@pytest.fixture
def inference(tmp_path: Path, database_url: str, model_path: Path) -> Iterator[ServiceProcess]:
    env = {
        "DATABASE_URL": database_url,
        "MODEL_PATH": str(model_path),
        "UPLOAD_IDLE_TIMEOUT_S": "1",
        "UPLOAD_TOTAL_TIMEOUT_S": "3",
        "MAX_CONCURRENCY": "2",
    }
    with ServiceProcess("inference", env, tmp_path) as service:
        yield service


def streamed_oversized_upload(service: ServiceProcess) -> int:
    def chunks() -> Iterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'
        for _ in range(200):
            yield b"x" * 65536

    headers = {"content-type": "multipart/form-data; boundary=b"}
    return httpx.post(
        f"{service.url}/predict", content=chunks(), headers=headers, timeout=30
    ).status_code


def stalled_upload(service: ServiceProcess) -> int | None:
    sock = open_upload(service, 100_000)
    try:
        return read_status(sock)
    finally:
        sock.close()


def abandoned_upload(service: ServiceProcess) -> None:
    sock = open_upload(service, 100_000)
    sock.sendall(b"x" * 1000)
    time.sleep(0.2)
    sock.close()


def test_refused_and_abandoned_uploads_count_as_client_errors(inference: ServiceProcess) -> None:
    before = answered(inference)
    assert streamed_oversized_upload(inference) == 413
    assert stalled_upload(inference) == 408
    for _ in range(3):
        abandoned_upload(inference)
    expected = before + Counter({"4xx": 5})
    wait_for(lambda: answered(inference) == expected, 10, "five client errors counted")
    assert answered(inference)["5xx"] == before["5xx"]


def test_requests_refused_for_lack_of_capacity_count_as_server_errors(
    inference: ServiceProcess,
) -> None:
    before = answered(inference)
    holders = [open_upload(inference, 100_000) for _ in range(2)]  # MAX_CONCURRENCY is 2
    try:
        time.sleep(0.3)
        refused = httpx.post(f"{inference.url}/predict", files={"file": ("a.jpg", b"x")})
    finally:
        statuses = [read_status(sock) for sock in holders]
        for sock in holders:
            sock.close()
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert statuses == [408, 408]
    expected = before + Counter({"5xx": 1, "4xx": 2})
    wait_for(lambda: answered(inference) == expected, 10, "one 503 and two 408 counted")
