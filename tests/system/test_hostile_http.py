"""Clients that stall, trickle or send absurd headers cannot hold or crash a worker."""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.services import ServiceProcess
from harness.stack import Stack, running_stack, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def inference(tmp_path: Path, database_url: str, model_path: Path) -> Iterator[ServiceProcess]:
    env = {
        "DATABASE_URL": database_url,
        "MODEL_PATH": str(model_path),
        "UPLOAD_IDLE_TIMEOUT_S": "1",
        "UPLOAD_TOTAL_TIMEOUT_S": "3",
    }
    with ServiceProcess("inference", env, tmp_path) as service:
        yield service


def open_upload(service: ServiceProcess, declared_length: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", service.port), timeout=15)
    head = (
        "POST /predict HTTP/1.1\r\nHost: test\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {declared_length}\r\n\r\n"
    )
    sock.sendall(head.encode() + b"--b\r\n")
    return sock


def read_status(sock: socket.socket) -> int | None:
    """The status line's code, or None when the server just closed the connection."""
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return None
        data += chunk
    return int(data.split(b" ", 2)[1])


def answered(service: ServiceProcess, handler: str = "/predict") -> Counter[str]:
    """`http_requests_total` of one route (POST /predict by default) by status group."""
    text = httpx.get(f"{service.url}/metrics", timeout=10).text
    counts: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "http_requests_total" and labels.get("handler") == handler:
                counts[labels["status"]] += int(sample.value)
    return counts


def test_stalled_upload_is_closed_with_408(inference: ServiceProcess) -> None:
    sock = open_upload(inference, 100_000)
    started = time.monotonic()
    status = read_status(sock)
    sock.close()
    assert status == 408
    assert time.monotonic() - started < 10
    assert httpx.get(f"{inference.url}/health").status_code == 200


def test_trickling_upload_is_cut_off_by_the_total_deadline(inference: ServiceProcess) -> None:
    sock = open_upload(inference, 100_000)
    sock.settimeout(0.3)
    started = time.monotonic()
    status = None
    while time.monotonic() - started < 15:
        try:
            sock.sendall(b"x")  # never idle for a whole second
        except OSError:
            break
        try:
            status = read_status(sock)
            break
        except TimeoutError:
            continue
    sock.close()
    assert status == 408
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("size", [64 * 1024, 1024 * 1024])
def test_oversized_headers_are_refused_without_harm(inference: ServiceProcess, size: int) -> None:
    try:
        response = httpx.get(f"{inference.url}/health", headers={"x-big": "a" * size}, timeout=10)
        assert 400 <= response.status_code < 500
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
        pass  # closing the connection on an absurd request (a reset, mid-send) also refuses it
    assert httpx.get(f"{inference.url}/health").status_code == 200


# --- the JSON services: feedback and notifier ----------------------------------------------

JSON_ROUTES = {"feedback": "/feedback", "notifier": "/notify"}


@pytest.fixture(scope="module")
def json_services(
    module_database: str, model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with running_stack(
        module_database,
        model_path,
        tmp_path_factory.mktemp("json-services"),
        services=("feedback", "notifier"),
    ) as running:
        yield running


def open_json_post(
    stack: Stack,
    service: str,
    declared_length: int,
    *,
    path: str | None = None,
    token: str | None = None,
    body_start: bytes = b'{"title": ',
) -> socket.socket:
    """A JSON POST whose head is sent whole and its body only begun (`body_start`)."""
    sock = socket.create_connection(("127.0.0.1", stack.services[service].port), timeout=40)
    head = (
        f"POST {path or JSON_ROUTES[service]} HTTP/1.1\r\nHost: test\r\n"
        f"Authorization: Bearer {token or stack.secrets.notifier_token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {declared_length}\r\n\r\n"
    )
    sock.sendall(head.encode() + body_start)
    return sock


def test_stalled_json_bodies_are_closed_with_408(json_services: Stack) -> None:
    sockets = {name: open_json_post(json_services, name, 5000) for name in JSON_ROUTES}
    statuses = {name: read_status(sock) for name, sock in sockets.items()}
    for sock in sockets.values():
        sock.close()
    assert statuses == {"feedback": 408, "notifier": 408}
    for name in JSON_ROUTES:
        assert httpx.get(f"{json_services.url(name)}/health").status_code == 200


@pytest.mark.parametrize("service", list(JSON_ROUTES))
def test_oversized_json_bodies_are_refused_declared_or_streamed(
    json_services: Stack, service: str
) -> None:
    url = json_services.url(service) + JSON_ROUTES[service]
    headers = {**json_services.notifier_auth, "content-type": "application/json"}
    declared = httpx.post(url, content=b"x" * (9 * 1024 * 1024), headers=headers, timeout=30)
    assert declared.status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(160):
            yield b" " * 65536

    streamed = httpx.post(url, content=chunks(), headers=headers, timeout=30)
    assert streamed.status_code == 413
    assert httpx.get(f"{json_services.url(service)}/health").status_code == 200


@pytest.mark.parametrize("service", list(JSON_ROUTES))
@pytest.mark.parametrize("size", [64 * 1024, 1024 * 1024])
def test_oversized_headers_are_refused_by_every_json_service(
    json_services: Stack, service: str, size: int
) -> None:
    url = json_services.url(service) + JSON_ROUTES[service]
    try:
        response = httpx.post(url, json={}, headers={"x-big": "a" * size}, timeout=10)
        assert 400 <= response.status_code < 500
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
        pass  # closing the connection on an absurd request (a reset, mid-send) also refuses it
    assert httpx.get(f"{json_services.url(service)}/health").status_code == 200


@pytest.mark.parametrize("path", ["/notify", "/alertmanager"])
def test_a_wrong_token_is_refused_before_the_body_is_read(json_services: Stack, path: str) -> None:
    """L7: a client with no token cannot make the notifier read, let alone parse, 8 MiB of JSON.
    Only the head is sent: the 401 can only come before the body."""
    notifier = json_services.services["notifier"]
    before = answered(notifier, path)["4xx"]
    sock = open_json_post(
        json_services, "notifier", 8 * 1024 * 1024 - 1, path=path, token="wrong", body_start=b""
    )
    sock.settimeout(5)  # the body deadline (UPLOAD_IDLE_TIMEOUT_S) is 15 s: a 408 comes later
    try:
        status = read_status(sock)
    except TimeoutError:
        status = None  # still waiting for the body
    finally:
        sock.close()
    assert status == 401
    wait_for(lambda: answered(notifier, path)["4xx"] == before + 1, 5, "the 401 counted")
    right = {**json_services.notifier_auth, "content-type": "application/json"}
    invalid = httpx.post(notifier.url + path, content=b"{not json", headers=right, timeout=10)
    assert invalid.status_code == 422
