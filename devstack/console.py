"""What `make run` shows a person at a terminal: a banner with every URL and how to log in,
then one line per event, prefixed by the process it came from."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO

from devstack.components import REPO_ROOT, Component
from services.common.settings import DEV_INFERENCE_ADMIN_TOKEN, DEV_NOTIFIER_TOKEN

# ANSI colours for the prefixes, one per process in start order.
_PREFIX_COLOURS = ("36", "35", "34", "33", "32", "96", "95")


def colour_output() -> bool:
    """Colour for our own standard output: a terminal, unless NO_COLOR says otherwise."""
    if os.environ.get("NO_COLOR"):
        return False
    return bool(os.environ.get("FORCE_COLOR")) or sys.stdout.isatty()


def prefix(name: str, index: int, *, colour: bool, width: int = 12) -> str:
    """`inference   │ ` in the process's colour."""
    text = f"{name:<{width}}│ "
    if not colour:
        return text
    return f"\x1b[{_PREFIX_COLOURS[index % len(_PREFIX_COLOURS)]}m{text}\x1b[0m"


def relay(stream: IO[bytes], label: str) -> threading.Thread:
    """Copy a child's output to ours line by line under `label`, on a thread of its own."""

    def copy() -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            sys.stdout.write(f"{label}{line}\n")
            sys.stdout.flush()

    thread = threading.Thread(target=copy, name=f"relay-{label.strip()}", daemon=True)
    thread.start()
    return thread


def _login(env: Mapping[str, str]) -> str:
    user = env.get("DASHBOARD_USER", "monitoring")
    if env.get("DASHBOARD_PASSWORD"):
        return f"log in as {user!r} with DASHBOARD_PASSWORD"
    return "no login: DEV_MODE without DASHBOARD_PASSWORD"


def _notifier(env: Mapping[str, str]) -> str:
    if env.get("NOTIFIER_TOKEN"):
        return "POST /notify with Authorization: Bearer $NOTIFIER_TOKEN"
    return f"POST /notify with Authorization: Bearer {DEV_NOTIFIER_TOKEN} (DEV_MODE)"


def _inference(env: Mapping[str, str]) -> str:
    if env.get("INFERENCE_ADMIN_TOKEN"):
        return "admin API with Authorization: Bearer $INFERENCE_ADMIN_TOKEN"
    return f"admin API with Authorization: Bearer {DEV_INFERENCE_ADMIN_TOKEN} (DEV_MODE)"


def banner(
    components: Iterable[Component], env: Mapping[str, str], logs: Mapping[str, Path]
) -> str:
    """Every URL, how to log in where one must, and where the monitoring tools' logs go."""
    notes = {"dashboard": _login(env), "notifier": _notifier(env), "inference": _inference(env)}
    lines = ["", "cat-dog stack running:"]
    for component in components:
        note = notes.get(component.name, "")
        if component.name in logs:
            log = logs[component.name]
            note = f"log: {log.relative_to(REPO_ROOT) if log.is_relative_to(REPO_ROOT) else log}"
        lines.append(f"  {component.name:<13} {component.url:<36} {note}".rstrip())
    lines += [
        "Commands run in this checkout (.venv/bin/python -m …, make retrain) reach this stack.",
        "Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)
