"""Start one service under uvicorn: `python -m services.common.serve inference`.

This is the only way services are started: by `make run`, the Docker images and Kubernetes.
Nothing here may import `prometheus_client` before the multiprocess folder is prepared.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import shutil
import tempfile
from pathlib import Path

SERVICES = ("inference", "feedback", "notifier", "dashboard")


def prepare_multiprocess_dir(workers: int) -> str | None:
    """With several workers, give them one empty folder for their metric files."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip()
    if not folder:
        # `.env.example` lists it blank; prometheus_client would take "" for a folder to use.
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if workers == 1 and not folder:
        return None
    if not folder:
        folder = tempfile.mkdtemp(prefix="cv-metrics-")
    # Files left by a previous run would be summed into this run's counters.
    shutil.rmtree(folder, ignore_errors=True)
    Path(folder).mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    return folder


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, prepare metrics storage, and run uvicorn."""
    parser = argparse.ArgumentParser(
        prog="python -m services.common.serve",
        description="Run one of the services with uvicorn, configured from the environment.",
    )
    parser.add_argument("service", choices=SERVICES, help="which service to run")
    parser.add_argument("--host", help="bind address (default: HOST)")
    parser.add_argument(
        "--port", type=int, help="port (default: the service's own, e.g. INFERENCE_PORT)"
    )
    parser.add_argument("--workers", type=int, help="worker processes (default: WORKERS)")
    args = parser.parse_args(argv)

    settings_module = importlib.import_module(f"services.{args.service}.settings")
    settings = settings_module.get_settings()
    workers = args.workers or settings.workers
    prepare_multiprocess_dir(workers)

    import uvicorn

    from services.common.connections import DeadlineH11Protocol
    from services.common.logs import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    # A partial, not class attributes: with several workers uvicorn pickles its config into
    # spawned processes, which import the class afresh.
    protocol = functools.partial(
        DeadlineH11Protocol,
        header_timeout_s=settings.header_timeout_s,
        max_connections=settings.max_connections,
    )
    uvicorn.run(
        f"services.{args.service}.app:create_app",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=workers,
        log_config=None,
        access_log=False,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=10,
        http=protocol,  # type: ignore[arg-type]
        # Bytes buffered for one request head; the protocol above makes h11 the parser, the
        # one that honours it. Open requests are limited (and the refusals counted) by the
        # app at MAX_CONCURRENCY, connections by the protocol at MAX_CONNECTIONS: uvicorn's
        # own limit counts idle connections as requests and answers uncounted 503s.
        h11_max_incomplete_event_size=16 * 1024,
        # Every per-client limit keys on the client address: a forwarded one is believed only
        # from the proxies named, never by default (uvicorn would trust any loopback peer).
        proxy_headers=settings.forwarded_allow_ips is not None,
        forwarded_allow_ips=settings.forwarded_allow_ips or "",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
