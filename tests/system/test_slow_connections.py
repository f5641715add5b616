"""Connections that never finish their request line and headers cannot starve real requests."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.services import ServiceProcess
from harness.stack import wait_for
from tests.support.images import jpeg

pytestmark = pytest.mark.slow

HEADER_TIMEOUT_S = 2.0
# More than the server used to accept at all (2 × MAX_CONCURRENCY, 256 by default).
IDLE_SOCKETS = 600


@pytest.fixture
def inference(tmp_path: Path, database_url: str, model_path: Path) -> Iterator[ServiceProcess]:
    env = {
        "DATABASE_URL": database_url,
        "MODEL_PATH": str(model_path),
        "HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
    }
    with ServiceProcess("inference", env, tmp_path) as service:
        yield service


def refused_connections(service: ServiceProcess, reason: str) -> float:
    """`cv_http_connections_refused_total` for one reason, read from the service's /metrics."""
    text = httpx.get(f"{service.url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        if family.name == "cv_http_connections_refused":
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.labels.get("reason") == reason:
                    return sample.value
    return 0.0


def closed_by_server(sock: socket.socket, deadline: float) -> bool:
    """True once the server has closed the connection (after whatever it sent), by `deadline`."""
    while True:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            if not sock.recv(4096):
                return True
        except ConnectionError:
            return True
        except TimeoutError:
            return False


def test_idle_connections_cannot_starve_real_requests(inference: ServiceProcess) -> None:
    before = refused_connections(inference, "header_timeout")
    sockets = [
        socket.create_connection(("127.0.0.1", inference.port), timeout=5)
        for _ in range(IDLE_SOCKETS)
    ]
    try:
        health = httpx.get(f"{inference.url}/health", timeout=5)
        predict = httpx.post(
            f"{inference.url}/predict", files={"file": ("a.jpg", jpeg())}, timeout=15
        )
        assert health.status_code == 200, health.text
        assert predict.status_code == 200, predict.text
        deadline = time.monotonic() + HEADER_TIMEOUT_S + 8
        still_open = sum(not closed_by_server(sock, deadline) for sock in sockets)
    finally:
        for sock in sockets:
            sock.close()
    assert still_open == 0, f"{still_open} of {IDLE_SOCKETS} idle connections still open"
    assert refused_connections(inference, "header_timeout") - before == IDLE_SOCKETS


def test_headers_trickled_past_the_deadline_are_cut_off(inference: ServiceProcess) -> None:
    sock = socket.create_connection(("127.0.0.1", inference.port), timeout=5)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n")
    started = time.monotonic()
    closed = False
    # One header line every 0.3 s: never idle, never finished.
    while not closed and time.monotonic() - started < HEADER_TIMEOUT_S + 8:
        try:
            sock.sendall(b"X-Slow: 1\r\n")
        except OSError:
            closed = True
            break
        closed = closed_by_server(sock, time.monotonic() + 0.3)
    elapsed = time.monotonic() - started
    sock.close()
    assert closed, "a connection trickling its headers was kept open"
    assert elapsed < HEADER_TIMEOUT_S + 4
    assert httpx.get(f"{inference.url}/health", timeout=5).status_code == 200


def test_a_keep_alive_connection_gets_a_new_deadline_for_each_request(
    inference: ServiceProcess,
) -> None:
    sock = socket.create_connection(("127.0.0.1", inference.port), timeout=5)
    try:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /health HTTP/1.1\r\n")  # the next request never finishes
        started = time.monotonic()
        closed = False
        while not closed and time.monotonic() - started < HEADER_TIMEOUT_S + 8:
            sock.sendall(b"X-Slow: 1\r\n")
            closed = closed_by_server(sock, time.monotonic() + 0.3)
    except OSError:
        closed = True
    finally:
        sock.close()
    assert closed


def test_connections_past_the_cap_are_closed_and_counted(
    tmp_path: Path, database_url: str, model_path: Path
) -> None:
    env = {"DATABASE_URL": database_url, "MODEL_PATH": str(model_path), "MAX_CONNECTIONS": "20"}
    with ServiceProcess("inference", env, tmp_path) as service:
        before = refused_connections(service, "too_many_connections")
        held = [socket.create_connection(("127.0.0.1", service.port)) for _ in range(20)]
        try:
            extra = socket.create_connection(("127.0.0.1", service.port), timeout=5)
            assert closed_by_server(extra, time.monotonic() + 5)
            extra.close()
        finally:
            for sock in held:
                sock.close()
        wait_for(lambda: healthy(service), 10, "the closed connections to be forgotten")
        assert refused_connections(service, "too_many_connections") - before == 1


def healthy(service: ServiceProcess) -> bool:
    try:
        return httpx.get(f"{service.url}/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def resident_bytes(service: ServiceProcess) -> int:
    """The service process's resident memory (one worker: the process itself)."""
    assert service.process is not None
    status = Path(f"/proc/{service.process.pid}/status").read_text()
    kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(kib) * 1024


def test_an_endless_request_head_is_cut_off_without_being_buffered(
    inference: ServiceProcess,
) -> None:
    rss_before = resident_bytes(inference)
    sock = socket.create_connection(("127.0.0.1", inference.port), timeout=5)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\nX-Big: ")
    chunk = b"a" * 65536
    sent = 0
    try:
        while sent < 64 * 1024 * 1024:
            sock.sendall(chunk)
            sent += len(chunk)
    except ConnectionError:
        pass  # refused: the server closed the connection (a send timing out is not that)
    finally:
        sock.close()
    # What the kernel's socket buffers take in before the reset arrives, not the server.
    assert sent < 16 * 1024 * 1024, f"the server read {sent} bytes of one header"
    assert resident_bytes(inference) - rss_before < 16 * 1024 * 1024
    assert httpx.get(f"{inference.url}/health", timeout=5).status_code == 200
