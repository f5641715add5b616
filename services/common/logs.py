"""Logging, configured once per process: JSON lines, or readable lines for a person.

JSON is what containers and log collectors read, and the default whenever standard error is
not a terminal; `make run` asks for the console format, one line per record.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from pythonjsonlogger.json import JsonFormatter

_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# What every LogRecord carries; anything else on a record came in through `extra=`.
_RECORD_FIELDS = frozenset(
    {
        *logging.LogRecord("", 0, "", 0, "", None, None).__dict__,
        "message",
        "asctime",
        "taskName",
        "color_message",
    }  # uvicorn's copy of the message with colour codes
)
_LEVEL_COLOURS = {"DEBUG": "2", "INFO": "32", "WARNING": "33", "ERROR": "31", "CRITICAL": "1;31"}


class ConsoleFormatter(logging.Formatter):
    """`12:03:04 WARNING services.x: message  key=value …`, the level coloured on request."""

    def __init__(self, *, colour: bool) -> None:
        super().__init__()
        self._colour = colour

    def format(self, record: logging.LogRecord) -> str:
        level = f"{record.levelname:<7}"
        if self._colour:
            level = f"\x1b[{_LEVEL_COLOURS.get(record.levelname, '0')}m{level}\x1b[0m"
        line = f"{self.formatTime(record, '%H:%M:%S')} {level} {record.name}: {record.getMessage()}"
        extras = {k: v for k, v in record.__dict__.items() if k not in _RECORD_FIELDS}
        if extras:
            line += "  " + " ".join(f"{key}={_short(value)}" for key, value in extras.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _short(value: Any) -> str:
    text = str(value)
    return repr(text) if " " in text else text


def wants_colour() -> bool:
    """The NO_COLOR / FORCE_COLOR conventions, else whether standard error is a terminal."""
    if os.environ.get("NO_COLOR"):
        return False
    return bool(os.environ.get("FORCE_COLOR")) or sys.stderr.isatty()


def configure_logging(level: str = "INFO", log_format: str = "auto") -> None:
    """Send every logger's records to stderr, as JSON lines or (`console`) readable ones;
    `auto` is console on a terminal, JSON otherwise."""
    handler = logging.StreamHandler(sys.stderr)
    console = log_format == "console" or (log_format == "auto" and sys.stderr.isatty())
    formatter: logging.Formatter = (
        ConsoleFormatter(colour=wants_colour())
        if console
        else JsonFormatter(_FORMAT, rename_fields={"levelname": "level"})
    )
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn installs its own handlers; route them through ours so every line has one format.
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers[:] = []
        uvicorn_logger.propagate = True
    # No access log: request lines carry query strings (tokens, ids) and the HTTP metrics
    # already count every request by route and status.
    logging.getLogger("uvicorn.access").disabled = True
