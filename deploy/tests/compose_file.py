"""Read `docker-compose.yml` the way Docker Compose does: YAML, then `${VAR}` interpolation.

Used by the deployment tests, which cannot run a Docker engine but can check what the file
would hand to each container.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
ENV_EXAMPLE = REPO_ROOT / ".env.example"

# `$$`, `${NAME<op>word}` with op one of :- - :? ? :+ +, or `$NAME`, as in the Compose spec.
_REFERENCE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<word>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


class InterpolationError(ValueError):
    """A `${VAR:?message}` whose variable is missing, or a malformed reference."""


def load(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    """The compose file as YAML gives it (anchors and merge keys resolved, not interpolated)."""
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def read_env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """`NAME=value` lines of a `.env` file; comments and blank lines skipped."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, sep, value = stripped.partition("=")
        if not sep:
            raise ValueError(f"{path}: not NAME=value: {line!r}")
        values[name.strip()] = value.strip()
    return values


def referenced_variables(text: str) -> dict[str, str | None]:
    """Every variable a compose file interpolates, with its operator (None for a plain use)."""
    found: dict[str, str | None] = {}
    for match in _REFERENCE.finditer(text):
        name = match.group("braced") or match.group("named")
        if name:
            found.setdefault(name, match.group("op"))
    return found


def defaults(text: str) -> dict[str, str]:
    """`${VAR:-default}` defaults, by variable."""
    return {
        match.group("braced"): match.group("word")
        for match in _REFERENCE.finditer(text)
        if match.group("op") in (":-", "-")
    }


def interpolate_string(value: str, env: Mapping[str, str]) -> str:
    """One string with its references replaced, as Compose would."""

    def replace(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("braced") or match.group("named")
        op, word = match.group("op"), match.group("word") or ""
        present = name in env
        non_empty = bool(env.get(name))
        if op == ":-":
            return env[name] if non_empty else word
        if op == "-":
            return env[name] if present else word
        if op in (":?", "?"):
            if (op == ":?" and not non_empty) or (op == "?" and not present):
                raise InterpolationError(f"{name}: {word or 'required'}")
            return env[name]
        if op == ":+":
            return word if non_empty else ""
        if op == "+":
            return word if present else ""
        return env.get(name, "")

    return _REFERENCE.sub(replace, value)


def interpolate(node: Any, env: Mapping[str, str]) -> Any:
    """The whole document (or any part of it) with every string interpolated."""
    if isinstance(node, str):
        return interpolate_string(node, env)
    if isinstance(node, list):
        return [interpolate(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    return node


def container_environment(service: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    """What the container's environment would be: a null value passes the variable through
    from the environment Compose runs in (or `.env`), and is left out when that has none."""
    declared = service.get("environment") or {}
    if isinstance(declared, list):
        declared = dict((item.split("=", 1) if "=" in item else (item, None)) for item in declared)
    resolved: dict[str, str] = {}
    for name, value in declared.items():
        if value is None:
            if name in env:
                resolved[name] = env[name]
            continue
        resolved[name] = str(interpolate(value, env) if isinstance(value, str) else value)
    return resolved
