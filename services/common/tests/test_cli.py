"""Command-line tools end with one sentence, never a traceback, when they cannot start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_refused_settings_end_a_tool_with_one_sentence(tmp_path: Path) -> None:
    """No stack of `make run` and no token: the digest used to print pydantic's traceback."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("NOTIFIER_", "DATABASE_URL", "DEV_MODE"))
    }
    env["STACK_FILE"] = str(tmp_path / "no-stack.json")
    done = subprocess.run(
        [sys.executable, "-m", "services.notifier.client", "digest", "--print"],
        capture_output=True, text=True, cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO_ROOT)},
        timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("the settings were refused (NOTIFIER_TOKEN must be set")
    assert "`make run`" in line
