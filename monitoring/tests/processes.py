"""Real Prometheus and Alertmanager processes for tests, with the project's rendered configs."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from harness.ports import free_port


class BinaryProcess:
    """A server binary on a free port on 127.0.0.1, logging to a file, ready on `/-/ready`."""

    def __init__(self, name: str, command: list[str], port: int, log_dir: Path) -> None:
        self.name = name
        self.command = command
        self.port = port
        self.log_path = log_dir / f"{name}-{port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> BinaryProcess:
        """Start and wait until the server says it is ready."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log()}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"{self.name} not ready: {self.log()}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(20)

    def log(self) -> str:
        """The end of its log, for failure messages."""
        return self.log_path.read_text(errors="replace")[-3000:]


class PrometheusApi:
    """The few HTTP API calls the tests need."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _get(self, path: str, **params: Any) -> Any:
        response = httpx.get(f"{self.url}{path}", params=params, timeout=10)
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {response.status_code} {body}")
        return body["data"]

    def instant(self, expr: str) -> list[dict[str, Any]]:
        """`/api/v1/query` at now: the result vector."""
        data = self._get("/api/v1/query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result

    def range(self, expr: str, seconds: float, step_s: float) -> list[dict[str, Any]]:
        """`/api/v1/query_range` over the last `seconds`, as Grafana's range queries do."""
        end = time.time()
        data = self._get(
            "/api/v1/query_range", query=expr, start=end - seconds, end=end, step=step_s
        )
        result: list[dict[str, Any]] = data["result"]
        return result

    def targets_up(self) -> dict[str, float]:
        """Job name to its `up` value."""
        return {sample["metric"]["job"]: float(sample["value"][1]) for sample in self.instant("up")}


def new_port() -> int:
    """A free TCP port (re-exported for the tests)."""
    return free_port()


def run_tool(*command: str | Path) -> subprocess.CompletedProcess[str]:
    """Run a tool; the caller asserts on the outcome (output kept for the failure message)."""
    return subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, timeout=120, check=False
    )
