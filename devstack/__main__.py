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
from pathlib import Path

from devstack.components import DATA_DIR, REPO_ROOT, Component, service_components
from devstack.console import banner, colour_output, prefix, relay
from devstack.monitoring import monitoring_components
from services.common.migrate import apply_migrations, create_database_if_missing

LOG_DIR = DATA_DIR / "logs"


def embedded_database_url() -> str:
    """Start (or reuse) the embedded PostgreSQL and return the project database's DSN."""
    import pgserver

    DATA_DIR.mkdir(exist_ok=True)
    server = pgserver.get_server(DATA_DIR / "postgres", cleanup_mode="stop")
    return server.get_uri("predictions_feedback")


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
    while not stopping:
        for name, process in processes.items():
            if process.poll() is not None:
                print(f"{name} exited with {process.returncode}; stopping", file=sys.stderr)
                exit_code, stopping = 1, True
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

    env = dict(os.environ)
    env.setdefault("DEV_MODE", "true")
    # Inference announces its start through the local notifier.
    env.setdefault("NOTIFIER_URL", "http://localhost:8002")
    database_url = env.get("DATABASE_URL") or embedded_database_url()
    env["DATABASE_URL"] = database_url
    create_database_if_missing(database_url)
    applied = apply_migrations(database_url)
    print(f"database ready ({len(applied)} migration(s) applied)")
    components = service_components()
    if not args.no_monitoring:
        components += monitoring_components(DATA_DIR)
    log_format = env.get("LOG_FORMAT", "auto")
    console = log_format == "console" or (log_format == "auto" and sys.stdout.isatty())
    if console:
        # The services' own lines, readable; LOG_FORMAT=json keeps them JSON here too.
        env["LOG_FORMAT"] = "console"
    else:
        print("starting:")
    return run(components, env, console=console)


if __name__ == "__main__":
    raise SystemExit(main())
