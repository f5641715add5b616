"""Real Prometheus and Alertmanager processes for tests and benchmarks.

Started with the command lines `make run` uses (`devstack.monitoring`), each on a free port with
its own folder and log, awaited on `/-/ready`; plus the Prometheus HTTP API calls the tests
make, and `run_tool` for promtool and amtool.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import httpx
import yaml

from devstack.monitoring import (
    ALERTMANAGER_BINARIES,
    alertmanager_command,
    find_binary,
    prometheus_command,
)
from harness.ports import free_port
from harness.waiting import wait_until
from monitoring.render import write_private

INSTALL_HINT = "install Debian's prometheus and prometheus-alertmanager (.ci/run does)"


def prometheus_binary() -> str | None:
    """The Prometheus server on PATH, if any."""
    return shutil.which("prometheus")


def alertmanager_binary() -> str | None:
    """The Alertmanager server on PATH, under Debian's name or upstream's, if any."""
    return find_binary(ALERTMANAGER_BINARIES)


class MonitoringProcess:
    """A server binary on 127.0.0.1, logging to a file, ready on `/-/ready`."""

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

    def start(self, timeout_s: float = 60.0) -> Self:
        """Start and wait until the server says it is ready."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)
        process = self.process

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log()}")
            try:
                return httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        if not wait_until(ready, timeout_s=timeout_s, interval_s=0.2):
            self.stop()
            raise TimeoutError(f"{self.name} not ready: {self.log()}")
        return self

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

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


class Prometheus(MonitoringProcess):
    """Prometheus with a given config, and the HTTP API calls the tests need."""

    def __init__(self, config: str, work_dir: Path, *, port: int | None = None) -> None:
        super().__init__(
            *_configured(
                "prometheus", prometheus_binary(), prometheus_command, config, work_dir, port
            )
        )

    def _get(self, path: str, **params: Any) -> Any:
        response = httpx.get(f"{self.url}{path}", params=params, timeout=10)
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {response.status_code} {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """`/api/v1/query` at now: the result vector."""
        result: list[dict[str, Any]] = self._get("/api/v1/query", query=expr)["result"]
        return result

    def value(self, expr: str) -> float | None:
        """The single value of an instant query, None when the result is empty."""
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def range(self, expr: str, seconds: float, step_s: float) -> list[dict[str, Any]]:
        """`/api/v1/query_range` over the last `seconds`, as Grafana's range queries do."""
        end = time.time()
        data = self._get(
            "/api/v1/query_range", query=expr, start=end - seconds, end=end, step=step_s
        )
        result: list[dict[str, Any]] = data["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        """Alerts pending or firing right now."""
        alerts: list[dict[str, Any]] = self._get("/api/v1/alerts")["alerts"]
        return alerts

    def up(self) -> dict[str, float]:
        """Job name to its `up` value."""
        return {sample["metric"]["job"]: float(sample["value"][1]) for sample in self.query("up")}

    def targets_up(self, jobs: set[str]) -> bool:
        """Whether every job in `jobs` has been scraped successfully."""
        return jobs <= {job for job, value in self.up().items() if value == 1}


class Alertmanager(MonitoringProcess):
    """A single Alertmanager with a given config (it may hold a token: kept private)."""

    def __init__(self, config: str, work_dir: Path, *, port: int | None = None) -> None:
        super().__init__(
            *_configured(
                "alertmanager", alertmanager_binary(), alertmanager_command, config, work_dir, port
            )
        )


def _configured(
    name: str,
    binary: str | None,
    command: Callable[[str, Path, Path, int], list[str]],
    config: str,
    work_dir: Path,
    port: int | None,
) -> tuple[str, list[str], int, Path]:
    """A server's name, command line, port and log folder, its config written privately to a
    folder of its own (it may hold a token) beside its data."""
    if binary is None:
        raise RuntimeError(f"no {name}: {INSTALL_HINT}")
    port = port or free_port()
    folder = work_dir / f"{name}-{port}"
    config_path = write_private(folder / f"{name}.yml", config)
    return name, command(binary, config_path, folder / "data", port), port, work_dir


def run_tool(*command: str | Path) -> subprocess.CompletedProcess[str]:
    """Run a tool; the caller asserts on the outcome (output kept for the failure message)."""
    return subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, timeout=120, check=False
    )


_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_RULE_DURATIONS = ("for", "keep_firing_for")


def duration_s(text: str) -> float:
    """Seconds in a Prometheus duration such as `2m` or `1h30m`."""
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(int(number) * _UNIT_S[unit] for number, unit in parts)


def write_scaled_rules(rules_dir: Path, out_dir: Path, factor: float) -> Path:
    """The committed rule files with every `for:` and `keep_firing_for:` divided by `factor`
    (at least 1 s): the same alerts on the same expressions, minutes becoming seconds.

    The committed durations are proven by promtool's unit tests in virtual time; a stack that
    must see an alert fire and resolve in real time runs these.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in sorted(rules_dir.glob("*.yml")):
        document = yaml.safe_load(path.read_text())
        for group in document.get("groups", []):
            for rule in group.get("rules", []):
                for key in _RULE_DURATIONS:
                    if key in rule:
                        rule[key] = f"{max(1, round(duration_s(rule[key]) / factor))}s"
        (out_dir / path.name).write_text(yaml.safe_dump(document, sort_keys=False))
    return out_dir
