"""A small reader of `deploy/docker/Dockerfile`: stages and their instructions.

Enough to check the images against the code (entrypoints, ports, health checks) where no
Docker engine runs; the syntax itself is checked by hadolint.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "deploy" / "docker" / "Dockerfile"


@dataclass
class Stage:
    """One `FROM ... AS name` stage and its instructions, in order."""

    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def last(self, keyword: str) -> str | None:
        """Arguments of the last instruction of that kind in this stage, if any."""
        found = [args for kw, args in self.instructions if kw == keyword]
        return found[-1] if found else None

    def all(self, keyword: str) -> list[str]:
        """Arguments of every instruction of that kind in this stage."""
        return [args for kw, args in self.instructions if kw == keyword]


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, continuation lines joined, comments dropped."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    result = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        result.append((keyword.upper(), args.strip()))
    return result


def stages(path: Path = DOCKERFILE) -> dict[str, Stage]:
    """Stages by name, global `ARG`s substituted into `FROM`."""
    args: dict[str, str] = {}
    found: dict[str, Stage] = {}
    current: Stage | None = None
    for keyword, rest in instructions(path.read_text()):
        if keyword == "ARG" and current is None:
            name, _, value = rest.partition("=")
            args[name] = value
            continue
        if keyword == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), parts[0])
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else str(len(found))
            current = found[name] = Stage(name, base)
            continue
        if current is not None:
            current.instructions.append((keyword, rest))
    return found


def exec_form(args: str) -> list[str]:
    """A JSON-array instruction argument (ENTRYPOINT, CMD) as a list."""
    value = json.loads(args)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"not an exec-form array: {args}")
    return value


def lineage(stage: str, all_stages: dict[str, Stage]) -> list[Stage]:
    """The stage and the stages it is built FROM, nearest first."""
    chain = []
    current: Stage | None = all_stages[stage]
    while current is not None:
        chain.append(current)
        current = all_stages.get(current.base)
    return chain


def effective(stage: str, keyword: str, all_stages: dict[str, Stage]) -> str | None:
    """An instruction's value as the image built from this stage has it (inherited or own)."""
    for ancestor in lineage(stage, all_stages):
        value = ancestor.last(keyword)
        if value is not None:
            return value
    return None


def environment(stage: str, all_stages: dict[str, Stage]) -> dict[str, str]:
    """`ENV` values the image built from this stage carries."""
    env: dict[str, str] = {}
    for ancestor in reversed(lineage(stage, all_stages)):
        for args in ancestor.all("ENV"):
            for item in shlex.split(args):
                name, _, value = item.partition("=")
                env[name] = value
    return env


def healthcheck_command(stage: str, all_stages: dict[str, Stage]) -> list[str] | None:
    """The exec-form command of the stage's HEALTHCHECK."""
    value = effective(stage, "HEALTHCHECK", all_stages)
    if value is None:
        return None
    _, _, command = value.partition("CMD ")
    return exec_form(command)
