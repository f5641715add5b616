"""What a running `make run` tells the command-line tools, through `.data/stack.json`.

While `python -m devstack` runs it keeps there its database's DSN, its services' URLs and the
development tokens it gave them, as the environment variables that name them, and removes the
file when it stops. Every settings class reads it after the environment and before `.env`
(`services.common.settings.StackFileSource`), so that the documented commands reach that
stack with nothing to set. A file left by a stack that was killed is ignored: its process is
gone.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_STACK_FILE = REPO_ROOT / ".data" / "stack.json"


def stack_file() -> Path:
    """Where the stack's state is kept: STACK_FILE, else `.data/stack.json` in this checkout."""
    configured = os.environ.get("STACK_FILE", "").strip()
    return Path(configured) if configured else DEFAULT_STACK_FILE


def write_stack_file(path: Path, environment: dict[str, str], urls: dict[str, str]) -> None:
    """Record the running stack (owner-only: it holds the DSN and the development tokens)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_suffix(".tmp")
    staged.touch(mode=0o600, exist_ok=True)
    staged.chmod(0o600)
    staged.write_text(
        json.dumps({"pid": os.getpid(), "environment": environment, "urls": urls}, indent=2)
    )
    # A reader never sees half a file.
    staged.replace(path)


def remove_stack_file(path: Path) -> None:
    """Forget the stack, if the file is still ours (a second run may have replaced it)."""
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A pid reused by another program after a kill -9 is not our stack.
    with contextlib.suppress(OSError):
        return b"devstack" in Path(f"/proc/{pid}/cmdline").read_bytes()
    return True


def running_stack(path: Path | None = None) -> dict[str, Any] | None:
    """The running stack's record, or None when none runs (no file, or its writer is gone)."""
    try:
        record = json.loads((path or stack_file()).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not _alive(record.get("pid")):
        return None
    return record


def stack_environment() -> dict[str, str]:
    """The variables the running stack offers, by name; empty when none runs."""
    record = running_stack()
    environment = record.get("environment") if record else None
    return dict(environment) if isinstance(environment, dict) else {}
