"""`make run` as a person sees it, with stand-in processes: the banner, one prefixed line per
event, the monitoring tools' own logs in files, and what Ctrl-C stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from devstack.components import REPO_ROOT

SCRIPT = """
import os, sys
from pathlib import Path
from devstack.__main__ import run
from devstack.components import Component

loud = [sys.executable, "-u", "-c", "import time; print('hello'); print('second'); time.sleep(60)"]
tool = [sys.executable, "-u", "-c", "import time; print('tool line'); time.sleep(60)"]
quits = [sys.executable, "-c", "raise SystemExit(3)"]
fails = [sys.executable, "-u", "-c", "print('bind: address already in use'); raise SystemExit(1)"]
components = [
    Component("talker", loud, "http://localhost:8000/"),
    Component("dashboard", loud, "http://localhost:8050/monitoring/"),
    Component("tool", tool, "http://localhost:9090", log_to_file=True),
]
if sys.argv[1] == "quits":
    components.append(Component("quitter", quits, "http://localhost:1/"))
if sys.argv[1] == "tool fails":
    components.append(Component("failer", fails, "http://localhost:2/", log_to_file=True,
                                essential=False))
sys.exit(run(components, dict(os.environ), console=True, log_dir=Path(sys.argv[2])))
"""


def _start(tmp_path: Path, mode: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "DASHBOARD_PASSWORD")}
    return subprocess.Popen(
        [sys.executable, "-u", "-c", SCRIPT, mode, str(tmp_path / "logs")],
        cwd=REPO_ROOT,
        env={**env, "NO_COLOR": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _read_until(process: subprocess.Popen[str], *needles: str, timeout_s: float = 20) -> list[str]:
    """Lines until each of `needles` has been one of them."""
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if all(needle in lines for needle in needles):
            return lines
    raise AssertionError(f"{needles} never all came: {lines}")


def test_banner_prefixed_lines_log_files_and_what_ctrl_c_stopped(tmp_path: Path) -> None:
    process = _start(tmp_path, "runs")
    try:
        lines = _read_until(process, "dashboard   │ second", "talker      │ second")
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=30)
    finally:
        process.kill()
    lines += out.splitlines()
    banner = lines[: lines.index("Ctrl-C stops everything.") + 1]
    assert any(line.split()[:2] == ["talker", "http://localhost:8000/"] for line in banner)
    (dashboard,) = [line for line in banner if line.strip().startswith("dashboard")]
    assert "http://localhost:8050/monitoring/" in dashboard
    assert "no login: DEV_MODE without DASHBOARD_PASSWORD" in dashboard
    (tool,) = [line for line in banner if line.strip().startswith("tool")]
    assert tool.endswith(f"log: {tmp_path / 'logs' / 'tool.log'}")
    # Every event after the banner is one line under its process' name; the tool's go to its file.
    events = lines[len(banner) :]
    assert "talker      │ hello" in events
    assert not [line for line in events if "tool line" in line]
    assert (tmp_path / "logs" / "tool.log").read_text() == "tool line\n"
    assert events[-1] == "stopped talker, dashboard, tool"
    assert process.returncode == 0


def test_a_process_that_dies_stops_the_stack_and_says_so(tmp_path: Path) -> None:
    process = _start(tmp_path, "quits")
    out, _ = process.communicate(timeout=60)
    assert "quitter exited with 3; stopping" in out
    assert out.rstrip().endswith("stopped talker, dashboard, tool, quitter (exit 3)")
    assert process.returncode == 1


def test_a_monitoring_tool_that_dies_shows_its_log_and_the_services_keep_running(
    tmp_path: Path,
) -> None:
    process = _start(tmp_path, "tool fails")
    try:
        lines = _read_until(
            process, "failer exited with 1; the services keep running", "talker      │ second"
        )
        time.sleep(1)
        assert process.poll() is None
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=30)
    finally:
        process.kill()
    log = tmp_path / "logs" / "failer.log"
    assert f"last lines of {log}:" in lines
    assert "  bind: address already in use" in lines
    assert out.rstrip().endswith("stopped talker, dashboard, tool, failer (exit 1)")
    assert process.returncode == 0
