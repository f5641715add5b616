"""The model registry from a shell: list, register, shadow, canary, promote, retire, rollback.

    python -m services.inference.registry_cli list
    python -m services.inference.registry_cli register models/cat_dog_classifier.onnx
    python -m services.inference.registry_cli shadow 2.1.0
    python -m services.inference.registry_cli canary 2.1.0 --share 0.1
    python -m services.inference.registry_cli promote 2.1.0
    python -m services.inference.registry_cli rollback

`list` puts each version's live figures beside its card's: answers served, accuracy on the
answers users labelled (95 % Wilson interval), the model watch's estimated accuracy and drift
verdict, and how its canary ended. Reads DATABASE_URL and MODEL_STORE_DIR like the inference
service. Every role change is
announced on Discord through the notifier when NOTIFIER_URL is set; replicas pick it up within
MODEL_REGISTRY_POLL_S. `--json` prints machine-readable output.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
import psycopg

from services.common.cli import run_cli, unreachable_message
from services.common.notify import send
from services.inference.live_figures import live_figures
from services.inference.registry import (
    Registry,
    RegistryError,
    RoleChange,
    announcement,
    as_json,
    local_actor,
)
from services.inference.settings import RegistrySettings


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m services.inference.registry_cli",
        description="Model versions and their roles (active, shadow, canary, retired).",
    )
    parser.add_argument("--json", action="store_true", help="print JSON for machines")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "list", help="every version: its role, its card's accuracy and its live figures"
    )
    events = commands.add_parser("events", help="the latest role changes")
    events.add_argument("--limit", type=int, default=20, help="how many (20)")
    register = commands.add_parser("register", help="copy a model and its card into the store")
    register.add_argument("file", type=Path, help="the ONNX file; its JSON card beside it")
    for name, text in (
        ("shadow", "score every answered photo with VERSION too, never shown"),
        ("promote", "make VERSION the active model (the current one is retired)"),
        ("retire", "stop serving VERSION"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("version")
        command.add_argument("--reason", default="", help="recorded and announced")
    canary = commands.add_parser("canary", help="send a share of requests to VERSION")
    canary.add_argument("version")
    canary.add_argument("--share", type=float, required=True, help="between 0 and 1, e.g. 0.1")
    canary.add_argument("--reason", default="", help="recorded and announced")
    rollback = commands.add_parser(
        "rollback", help="retire the canary, or give the active role back to the previous version"
    )
    rollback.add_argument("--reason", default="", help="recorded and announced")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, registry: Registry, database_url: str) -> Any:
    """Carry out one command; returns what to print."""
    who = local_actor("cli")
    if args.command == "list":
        rows = [version.summary() for version in registry.versions()]
        live = asyncio.run(
            live_figures(database_url, {row["version"]: row["role"] for row in rows})
        )
        return [{**row, "live": live[row["version"]]} for row in rows]
    if args.command == "events":
        return registry.events(args.limit)
    if args.command == "register":
        return registry.register(args.file, actor=who)
    if args.command == "shadow":
        return registry.shadow(args.version, actor=who, reason=args.reason)
    if args.command == "canary":
        return registry.canary(args.version, args.share, actor=who, reason=args.reason)
    if args.command == "promote":
        return registry.promote(args.version, actor=who, reason=args.reason)
    if args.command == "retire":
        return registry.retire(args.version, actor=who, reason=args.reason)
    return registry.rollback(actor=who, reason=args.reason)


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no model version registered yet"
    header = (
        f"{'version':<24} {'role':<9} {'share':>5}  {'card':>7}  {'answers':>7}  "
        f"{'feedback (95% interval)':<27} {'estimated':>9}  {'drift':<11} canary"
    )
    lines = [header]
    for row in rows:
        live = row["live"]
        share = f"{row['canary_share']:.0%}" if row["canary_share"] else ""
        lines.append(
            f"{row['version']:<24} {row['role']:<9} {share:>5}  {_headline_accuracy(row):>7}  "
            f"{live['answers']:>7}  {_feedback(live):<27} {_percent(live['estimated_accuracy']):>9}"
            f"  {live['drift']:<11} {_canary(live['canary'])}"
        )
    return "\n".join(lines)


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def _feedback(live: dict[str, Any]) -> str:
    if not live["labelled"]:
        return "no labelled answer"
    low, high = live["feedback_interval"]
    return f"{live['feedback_accuracy']:.1%} [{low:.1%}-{high:.1%}] n={live['labelled']}"


def _canary(canary: dict[str, Any] | None) -> str:
    if canary is None:
        return ""
    if canary["outcome"] == "running":
        return "running"
    return f"{canary['outcome']} {canary['at'][:10]} by {canary['actor']}: {canary['reason']}"


def _headline_accuracy(row: dict[str, Any]) -> str:
    validation = row.get("validation") or {}
    for figures in validation.values() if isinstance(validation, dict) else ():
        if isinstance(figures, dict) and "accuracy" in figures:
            return f"{figures['accuracy']:.1%}"
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; exit 0 done, 1 refused (the reason printed), 2 registry unreachable."""
    args = parse_args(argv)
    settings = RegistrySettings()
    registry = Registry(settings.database_url, settings.model_store_dir)
    try:
        result = run(args, registry, settings.database_url)
    except RegistryError as error:
        print(f"refused: {error}", file=sys.stderr)
        return 1
    except (psycopg.OperationalError, OSError, asyncpg.PostgresError) as error:
        print(unreachable_message(error), file=sys.stderr)
        return 2
    if isinstance(result, RoleChange):
        if result.from_role != result.to_role:
            asyncio.run(send(*announcement(result)))
        print(as_json(result.as_dict()) if args.json else _describe(result))
    elif args.json:
        print(as_json(result))
    elif args.command == "list":
        print(_table(result))
    else:
        for event in result:
            print(
                f"{event['at'][:19]}  {event['version']:<24} {event['from_role'] or 'new':>10}"
                f" → {event['to_role']:<10} {event['actor']}  {event['reason']}"
            )
    return 0


def _describe(change: RoleChange) -> str:
    if change.from_role == change.to_role:
        return f"model {change.version} is already {change.to_role}: nothing changed"
    return announcement(change)[1]


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
