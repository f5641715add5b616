"""Clients that stall, trickle or send absurd headers cannot hold or crash a worker."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.services import ServiceProcess

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
    except httpx.RemoteProtocolError:
        pass  # closing the connection on an absurd request is also a refusal
    assert httpx.get(f"{inference.url}/health").status_code == 200
