"""Render the committed Prometheus and Alertmanager configs for the network they run on.

`prometheus/prometheus.yml` is written for the compose network and is the one source of jobs,
targets and intervals: other networks (`make run` on localhost, tests on free ports) get the
same file with their addresses substituted. `alertmanager/alertmanager.yml` is a template whose
`${NOTIFIER_URL}`, `${NOTIFIER_TOKEN}` and `${DISCORD_WEBHOOK_URL}` are filled at start, because
Alertmanager does not expand environment variables and secrets must never be committed.
"""

from __future__ import annotations

import argparse
import json
import os
import string
import sys
import tempfile
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

MONITORING_DIR = Path(__file__).resolve().parent
PROMETHEUS_CONFIG = MONITORING_DIR / "prometheus" / "prometheus.yml"
RULES_DIR = MONITORING_DIR / "prometheus" / "rules"
ALERTMANAGER_TEMPLATE = MONITORING_DIR / "alertmanager" / "alertmanager.yml"
ALERTMANAGER_JOB = "alertmanager"
COMPOSE_NOTIFIER_URL = "http://notifier:8002"
DIRECT_RECEIVER = "discord-direct"
FALLBACK_RECEIVER = "notifier-critical"
_ROUTE_TIMINGS = ("group_wait", "group_interval", "repeat_interval")


class _Dumper(yaml.SafeDumper):
    """Writes repeated blocks out in full: a rendered file is read by people, not parsed back."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _dump(config: dict[str, Any]) -> str:
    return yaml.dump(config, Dumper=_Dumper, sort_keys=False)


class RenderError(ValueError):
    """The requested rendering does not fit the committed config."""


def _load_prometheus() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    return config


def compose_targets() -> dict[str, str]:
    """Job name to `host:port` as committed (compose service names)."""
    targets: dict[str, str] = {}
    for job in _load_prometheus()["scrape_configs"]:
        (static,) = job["static_configs"]
        (targets[job["job_name"]],) = static["targets"]
    return targets


def local_targets(
    host: str = "127.0.0.1", ports: Mapping[str, int] | None = None
) -> dict[str, str]:
    """The committed targets on one host: same ports unless `ports` overrides some jobs."""
    ports = ports or {}
    unknown = set(ports) - set(compose_targets())
    if unknown:
        raise RenderError(f"no such job in prometheus.yml: {', '.join(sorted(unknown))}")
    return {
        job: f"{host}:{ports.get(job, int(address.rpartition(':')[2]))}"
        for job, address in compose_targets().items()
    }


def render_prometheus(
    targets: Mapping[str, str],
    *,
    rules_dir: Path = RULES_DIR,
    scrape_interval: str | None = None,
    evaluation_interval: str | None = None,
) -> str:
    """The committed config with each job's target replaced and rule files made absolute.

    Shorter intervals are for tests that need rules evaluated in seconds; the rules themselves
    (expressions, `for:`, `keep_firing_for:`) are always the committed ones.
    """
    config = _load_prometheus()
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    unknown = set(targets) - set(jobs)
    if unknown:
        raise RenderError(f"no such job in prometheus.yml: {', '.join(sorted(unknown))}")
    for name, address in targets.items():
        jobs[name]["static_configs"] = [{"targets": [address]}]
    if ALERTMANAGER_JOB in targets:
        config["alerting"]["alertmanagers"] = [
            {"static_configs": [{"targets": [targets[ALERTMANAGER_JOB]]}]}
        ]
    config["rule_files"] = [str(rules_dir.resolve() / "*.yml")]
    if scrape_interval:
        config["global"]["scrape_interval"] = scrape_interval
        # Prometheus refuses a scrape timeout longer than the interval.
        config["global"]["scrape_timeout"] = scrape_interval
    if evaluation_interval:
        config["global"]["evaluation_interval"] = evaluation_interval
    return _dump(config)


def render_alertmanager(
    *,
    notifier_token: str,
    notifier_url: str = COMPOSE_NOTIFIER_URL,
    discord_webhook_url: str | None = None,
    timings: Mapping[str, str] | None = None,
) -> str:
    """The template with the notifier's address and token and the Discord webhook filled in.

    Without a Discord webhook (the notifier's disabled mode), the alerts routed straight to
    Discord go to the notifier instead.

    `timings` replaces `group_wait`, `group_interval` or `repeat_interval` on every route that
    sets it (tests shorten them to see notifications in seconds); routing stays the committed one.
    """
    if not notifier_token:
        raise RenderError("the notifier token is empty: Alertmanager would be refused (401)")
    unknown = set(timings or {}) - set(_ROUTE_TIMINGS)
    if unknown:
        raise RenderError(f"not a route timing: {', '.join(sorted(unknown))}")
    # Secrets go in as JSON strings (valid YAML scalars) and the URL is checked, so no value
    # can change the document's structure.
    text = string.Template(ALERTMANAGER_TEMPLATE.read_text()).substitute(
        NOTIFIER_URL=_checked_base_url(notifier_url),
        NOTIFIER_TOKEN=json.dumps(notifier_token),
        DISCORD_WEBHOOK_URL=json.dumps(discord_webhook_url),
    )
    config: dict[str, Any] = yaml.safe_load(text)
    if not discord_webhook_url:
        _without_direct_receiver(config)
    if timings:
        _retime(config["route"], timings, top=True)
    return _dump(config)


def _checked_base_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise RenderError(f"the notifier URL must be http(s)://host[:port], got {url!r}")
    if parts.query or parts.fragment or any(char in url for char in " \"'#\n"):
        raise RenderError(f"the notifier URL must be a plain base URL, got {url!r}")
    return url.rstrip("/")


def _without_direct_receiver(config: dict[str, Any]) -> None:
    config["receivers"] = [r for r in config["receivers"] if r["name"] != DIRECT_RECEIVER]
    for route in config["route"].get("routes", []):
        if route["receiver"] == DIRECT_RECEIVER:
            route["receiver"] = FALLBACK_RECEIVER


def _retime(route: dict[str, Any], timings: Mapping[str, str], *, top: bool) -> None:
    for key, value in timings.items():
        if top or key in route:
            route[key] = value
    for child in route.get("routes", []):
        _retime(child, timings, top=False)


def _parse_pairs(pairs: list[str], what: str) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise RenderError(f"{what} must look like name=value, got {pair!r}")
        parsed[key] = value
    return parsed


def main(argv: list[str] | None = None) -> int:
    """Command line: print or write a rendered config."""
    parser = argparse.ArgumentParser(
        prog="python -m monitoring.render",
        description="Render the Prometheus or Alertmanager config for a given network.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    prometheus = commands.add_parser("prometheus", help="prometheus.yml with other targets")
    prometheus.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="JOB=HOST:PORT",
        help="replace one job's target (repeatable); other jobs keep the committed one",
    )
    prometheus.add_argument(
        "--localhost", action="store_true", help="every job on 127.0.0.1 with its committed port"
    )
    prometheus.add_argument("--rules-dir", type=Path, default=RULES_DIR, help="rule files folder")
    alertmanager = commands.add_parser("alertmanager", help="alertmanager.yml with the secrets")
    alertmanager.add_argument(
        "--notifier-url", default=COMPOSE_NOTIFIER_URL, help="base URL of the notifier"
    )
    # Secrets are read from a file or an environment variable, never the command line.
    token = alertmanager.add_mutually_exclusive_group(required=True)
    token.add_argument("--token-file", type=Path, help="file holding the notifier's bearer token")
    token.add_argument("--token-env", metavar="NAME", help="variable holding that token")
    webhook = alertmanager.add_mutually_exclusive_group()
    webhook.add_argument(
        "--discord-webhook-file",
        type=Path,
        help="file holding DISCORD_WEBHOOK_URL, for the alerts that bypass the notifier; "
        "missing or blank, they go to the notifier",
    )
    webhook.add_argument("--discord-webhook-env", metavar="NAME", help="variable holding it")
    alertmanager.add_argument(
        "--route-timing",
        action="append",
        default=[],
        metavar="NAME=DURATION",
        help="replace group_wait, group_interval or repeat_interval on every route that sets "
        "it (repeatable; tests use it to see notifications in seconds)",
    )
    alertmanager.add_argument(
        "--owner",
        metavar="UID:GID",
        help="hand the written file to this user (the one Alertmanager runs as)",
    )
    for sub in (prometheus, alertmanager):
        sub.add_argument("--out", type=Path, help="write here instead of standard output")
    args = parser.parse_args(argv)

    try:
        if args.command == "prometheus":
            targets = local_targets() if args.localhost else {}
            targets.update(_parse_pairs(args.target, "--target"))
            text = render_prometheus(targets, rules_dir=args.rules_dir)
        else:
            text = render_alertmanager(
                notifier_token=_secret(args.token_file, args.token_env),
                notifier_url=args.notifier_url,
                discord_webhook_url=_secret(
                    args.discord_webhook_file, args.discord_webhook_env, optional=True
                )
                or None,
                timings=_parse_pairs(args.route_timing, "--route-timing"),
            )
        if args.out is None:
            sys.stdout.write(text)
        else:
            owner = _parse_owner(args.owner) if args.command == "alertmanager" else None
            write_private(args.out, text, owner=owner)
    except (RenderError, OSError) as error:
        parser.error(str(error))
    return 0


def _secret(path: Path | None, variable: str | None, *, optional: bool = False) -> str:
    """A secret from its file or variable; an optional one may be missing (Docker Compose
    writes no file for an empty secret)."""
    if variable is not None:
        return os.environ.get(variable, "").strip()
    if path is None or (optional and not path.exists()):
        return ""
    return path.read_text().strip()


def _parse_owner(owner: str | None) -> tuple[int, int] | None:
    if owner is None:
        return None
    uid, sep, gid = owner.partition(":")
    if not (sep and uid.isdigit() and gid.isdigit()):
        raise RenderError(f"--owner must be UID:GID in numbers, got {owner!r}")
    return int(uid), int(gid)


def write_private(out: Path, text: str, *, owner: tuple[int, int] | None = None) -> Path:
    """Replace `out` with a 0600 file holding `text` (it may hold a token), owned by `owner`
    when given.

    Written beside it and renamed: the previous file may belong to another user that this
    process (root with CAP_CHOWN only, in a container) can no longer open.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    try:
        with os.fdopen(handle, "w") as file:
            file.write(text)
            os.fchmod(file.fileno(), 0o600)
            if owner is not None:
                os.fchown(file.fileno(), *owner)
        os.replace(temporary, out)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return out


if __name__ == "__main__":
    raise SystemExit(main())
