"""`make run`: every service that exists, on this machine, without Docker.

PostgreSQL is `DATABASE_URL` when set, else an embedded server kept under `.data/postgres`.
Prometheus and Alertmanager join when their binaries are installed. At a terminal the output
is for a person (`devstack.console`); elsewhere, or with LOG_FORMAT=json, it is JSON lines.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import warnings
from collections import deque
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from devstack.components import DATA_DIR, REPO_ROOT, Component, service_components
from devstack.console import banner, colour_output, prefix, relay
from devstack.monitoring import get_settings, monitoring_components
from devstack.ports import port_holder, port_is_free
from services.common.migrate import apply_migrations, create_database_if_missing
from services.common.running_stack import (
    remove_stack_file,
    running_stack,
    stack_file,
    write_stack_file,
)
from services.common.settings import DEV_INFERENCE_ADMIN_TOKEN, DEV_NOTIFIER_TOKEN

LOG_DIR = DATA_DIR / "logs"
# Lines of a dead process's log shown on the console.
LOG_TAIL_LINES = 15


def embedded_database_url() -> str:
    """Start (or reuse) the embedded PostgreSQL and return the project database's DSN."""
    with warnings.catch_warnings():
        # Without XDG_RUNTIME_DIR (a root shell, a container) platformdirs warns on every run
        # and falls back to a /tmp folder, which is where the socket may well live.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
        import pgserver

        DATA_DIR.mkdir(exist_ok=True)
        server = pgserver.get_server(DATA_DIR / "postgres", cleanup_mode="stop")
    return server.get_uri("predictions_feedback")


def without_password(url: str) -> str:
    """The DSN as it may be printed."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))


def with_free_ports(components: list[Component]) -> list[Component]:
    """The components whose port is free; for each other one, a line saying who holds its
    port and how to choose another."""
    free = []
    for component in components:
        if component.port is None or port_is_free(component.port):
            free.append(component)
            continue
        example = (
            f"{component.port_variable}=http://localhost:{component.port + 1}"
            if component.port_variable.endswith("_URL")
            else f"{component.port_variable}={component.port + 1}"
        )
        print(
            f"{component.name} not started: port {component.port} is taken by "
            f"{port_holder(component.port)}; choose another with {example} make run",
            file=sys.stderr,
            flush=True,
        )
    return free


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last lines of a log file (none when it is missing)."""
    try:
        with path.open(errors="replace") as log:
            return [line.rstrip("\n") for line in deque(log, maxlen=lines)]
    except OSError:
        return []


def run(
    components: list[Component], env: dict[str, str], *, console: bool, log_dir: Path = LOG_DIR
) -> int:
    """Start everything, stop everything when one dies or on Ctrl-C.

    With `console` (a person at a terminal) the services log readable lines, relayed with
    their name in front, and Prometheus and Alertmanager log to files under .data/logs;
    otherwise every process writes its own lines (JSON for the services) to ours.
    """
    processes: dict[str, subprocess.Popen[bytes]] = {}
    logs: dict[str, Path] = {}
    stopping = False
    colour = console and colour_output()

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for component in components:
        child_env = {**env, **component.env}
        if console and component.log_to_file:
            log_dir.mkdir(parents=True, exist_ok=True)
            logs[component.name] = log_dir / f"{component.name}.log"
            with logs[component.name].open("ab") as log:
                processes[component.name] = subprocess.Popen(
                    component.command, cwd=REPO_ROOT, env=child_env, stdout=log, stderr=log
                )
        elif console:
            processes[component.name] = subprocess.Popen(
                component.command,
                cwd=REPO_ROOT,
                env={**child_env, "FORCE_COLOR": "1"} if colour else child_env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        else:
            processes[component.name] = subprocess.Popen(
                component.command, cwd=REPO_ROOT, env=child_env
            )
            print(f"  {component.name:<13} {component.url}", flush=True)
    if console:
        print(banner(components, env, logs), flush=True)
        for index, (name, process) in enumerate(processes.items()):
            if process.stdout is not None:
                relay(process.stdout, prefix(name, index, colour=colour))
    exit_code = 0
    essential = {component.name: component.essential for component in components}
    watched = dict(processes)
    while not stopping:
        for name, process in list(watched.items()):
            if process.poll() is None:
                continue
            del watched[name]
            if name in logs:
                # Its lines went to a file nobody is looking at: show the end of it.
                tail = log_tail(logs[name])
                print(f"last lines of {logs[name]}:", *tail, sep="\n  ", file=sys.stderr)
            if essential[name]:
                print(f"{name} exited with {process.returncode}; stopping", file=sys.stderr)
                exit_code, stopping = 1, True
            else:
                print(
                    f"{name} exited with {process.returncode}; the services keep running",
                    file=sys.stderr,
                )
        time.sleep(0.2)
    for process in processes.values():
        if process.poll() is None:
            process.terminate()
    stopped = []
    for name, process in processes.items():
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        stopped.append(name if process.returncode in (0, -signal.SIGTERM) else
                       f"{name} (exit {process.returncode})")  # fmt: skip
    print(f"stopped {', '.join(stopped)}", flush=True)
    return exit_code


def main(argv: list[str] | None = None) -> int:
    """Prepare the database, then run the stack in the foreground."""
    parser = argparse.ArgumentParser(
        prog="python -m devstack",
        description="Run every service of the project on this machine (Ctrl-C stops them).",
    )
    parser.add_argument(
        "--no-monitoring", action="store_true", help="skip Prometheus and Alertmanager"
    )
    args = parser.parse_args(argv)

    # A second stack would find every port taken and, on exit, remove the first one's record.
    already = running_stack()
    if already is not None:
        print(
            f"a stack of `make run` already runs here (pid {already['pid']}, recorded in "
            f"{stack_file()}): use it, or stop it with Ctrl-C in its terminal first",
            file=sys.stderr,
        )
        return 1

    env = dict(os.environ)
    env.setdefault("DEV_MODE", "true")
    settings = get_settings()
    # Inference announces its start through the local notifier.
    env.setdefault("NOTIFIER_URL", f"http://localhost:{settings.notifier_port}")
    # Alert links in the notifier's messages open the Prometheus and Alertmanager run here,
    # unless the environment or .env names others.
    env["PROMETHEUS_PUBLIC_URL"] = settings.prometheus_public_url or settings.prometheus_url
    env["ALERTMANAGER_PUBLIC_URL"] = settings.alertmanager_public_url or settings.alertmanager_url
    database_url = env.get("DATABASE_URL") or embedded_database_url()
    env["DATABASE_URL"] = database_url
    create_database_if_missing(database_url)
    applied = apply_migrations(database_url)
    print(f"database ready ({len(applied)} migration(s) applied): {without_password(database_url)}")
    components = service_components(settings.service_ports())
    if not args.no_monitoring:
        components += monitoring_components(DATA_DIR)
    components = with_free_ports(components)
    if not components:
        print("nothing to start: every port is taken", file=sys.stderr)
        return 1
    log_format = env.get("LOG_FORMAT", "auto")
    console = log_format == "console" or (log_format == "auto" and sys.stdout.isatty())
    if console:
        # The services' own lines, readable; LOG_FORMAT=json keeps them JSON here too.
        env["LOG_FORMAT"] = "console"
    else:
        print("starting:")
    state = stack_file()
    write_stack_file(state, offered_environment(env), {c.name: c.url for c in components})
    try:
        return run(components, env, console=console)
    finally:
        remove_stack_file(state)


def offered_environment(env: dict[str, str]) -> dict[str, str]:
    """What the command-line tools need to reach this stack (`services.common.running_stack`):
    its database and notifier, and in DEV_MODE the development tokens its services accept.
    Tokens of a person's own are not written down: the tools take them from the environment."""
    offered = {"DATABASE_URL": env["DATABASE_URL"], "NOTIFIER_URL": env["NOTIFIER_URL"]}
    if env.get("MODEL_STORE_DIR"):
        offered["MODEL_STORE_DIR"] = str(Path(env["MODEL_STORE_DIR"]).resolve())
    if env.get("DEV_MODE", "").strip().lower() in {"1", "true", "yes", "on"}:
        # A tool that reads the notifier's settings refuses the development token outside
        # DEV_MODE, as the notifier itself does.
        offered["DEV_MODE"] = "true"
        if not env.get("NOTIFIER_TOKEN"):
            offered["NOTIFIER_TOKEN"] = DEV_NOTIFIER_TOKEN
        if not env.get("INFERENCE_ADMIN_TOKEN"):
            offered["INFERENCE_ADMIN_TOKEN"] = DEV_INFERENCE_ADMIN_TOKEN
    return offered


if __name__ == "__main__":
    raise SystemExit(main())
