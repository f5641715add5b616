"""Log lines as a person reads them in `make run`, and as JSON everywhere else, each format
configured in a fresh interpreter as a service's is."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from services.common.logs import ConsoleFormatter

REPO_ROOT = Path(__file__).resolve().parents[3]
SCRIPT = """
import logging
from services.common.logs import configure_logging
configure_logging("INFO", {fmt!r})
logging.getLogger("services.demo").warning("model watch", extra={{"version": "1.0.0", "p": 0.5}})
"""


def _stderr(fmt: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(fmt=fmt)],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", **env},
        cwd=REPO_ROOT,
    )
    return result.stderr


def test_json_lines_keep_every_field() -> None:
    record = json.loads(_stderr("json"))
    assert record["level"] == "WARNING"
    assert record["name"] == "services.demo"
    assert (record["message"], record["version"], record["p"]) == ("model watch", "1.0.0", 0.5)


def test_auto_is_json_when_standard_error_is_not_a_terminal() -> None:
    assert json.loads(_stderr("auto"))["message"] == "model watch"


def test_console_lines_read_as_sentences_with_their_fields() -> None:
    line = _stderr("console").rstrip("\n")
    assert "\n" not in line
    assert line.endswith("WARNING services.demo: model watch  version=1.0.0 p=0.5")
    assert "\x1b[" not in line  # not a terminal, no FORCE_COLOR: no colour codes


@pytest.mark.parametrize(
    ("env", "coloured"),
    [({"FORCE_COLOR": "1"}, True), ({"FORCE_COLOR": "1", "NO_COLOR": "1"}, False)],
)
def test_colour_follows_force_color_and_no_color(env: dict[str, str], coloured: bool) -> None:
    assert ("\x1b[33mWARNING" in _stderr("console", **env)) is coloured


def test_console_lines_carry_the_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    text = ConsoleFormatter(colour=False).format(record)
    assert text.splitlines()[0].endswith("ERROR   x: failed")
    assert "ValueError: boom" in text
