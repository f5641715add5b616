"""`make run`: every service that exists, on this machine, without Docker.

PostgreSQL is `DATABASE_URL` when set, else an embedded server kept under `.data/postgres`.
Prometheus and Alertmanager join when their binaries are installed.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

from devstack.components import DATA_DIR, REPO_ROOT, Component, service_components
from devstack.monitoring import monitoring_components
from services.common.migrate import apply_migrations, create_database_if_missing


def embedded_database_url() -> str:
    """Start (or reuse) the embedded PostgreSQL and return the project database's DSN."""
    import pgserver

    DATA_DIR.mkdir(exist_ok=True)
    server = pgserver.get_server(DATA_DIR / "postgres", cleanup_mode="stop")
    return server.get_uri("predictions_feedback")


def run(components: list[Component], env: dict[str, str]) -> int:
    """Start everything, stop everything when one dies or on Ctrl-C."""
    processes: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for component in components:
        processes[component.name] = subprocess.Popen(
            component.command, cwd=REPO_ROOT, env={**env, **component.env}
        )
        print(f"  {component.name:<13} {component.url}", flush=True)
    exit_code = 0
    while not stopping:
        for name, process in processes.items():
            if process.poll() is not None:
                print(f"{name} exited with {process.returncode}; stopping", file=sys.stderr)
                exit_code, stopping = 1, True
        time.sleep(0.5)
    for process in processes.values():
        if process.poll() is None:
            process.terminate()
    for process in processes.values():
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
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
    print("starting:")
    return run(components, env)


if __name__ == "__main__":
    raise SystemExit(main())
