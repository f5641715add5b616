"""Prometheus setup shared by the services: the registry to expose, HTTP instrumentation, DB gauge.

`prometheus_client` picks its value storage when first imported, so `serve.py` prepares
`PROMETHEUS_MULTIPROC_DIR` before anything imports this module.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

from fastapi import FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Gauge,
    generate_latest,
    multiprocess,
)
from prometheus_fastapi_instrumentator import Instrumentator, metrics
from prometheus_fastapi_instrumentator.metrics import Info

# Routes whose traffic is the platform talking to itself, not users.
UNINSTRUMENTED_ROUTES = ["/metrics", "/health", "/ready"]

DATABASE_CONNECTED = Gauge(
    "cv_database_connected",
    "1 when this process can reach PostgreSQL, 0 when it cannot.",
    multiprocess_mode="livemin",
)


def multiprocess_dir() -> str | None:
    """The shared folder of per-process metric files, or None in single-process mode."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def collect_registry() -> CollectorRegistry:
    """The registry to expose: every worker's samples merged, or this process's own."""
    if multiprocess_dir() is None:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


@functools.cache
def _http_metrics() -> Callable[[Info], None]:
    # Created once per process: a second app (tests build many) would otherwise try to
    # register the same metric names again, and the library then silently records nothing.
    instrumentation = metrics.default()
    assert instrumentation is not None
    return instrumentation


def install_metrics(app: FastAPI, *, enabled: bool) -> None:
    """Instrument HTTP requests by route template and expose `/metrics` when enabled."""
    Instrumentator(
        should_group_status_codes=True,
        should_ignore_untemplated=True,
        excluded_handlers=UNINSTRUMENTED_ROUTES,
    ).add(_http_metrics()).instrument(app)
    if not enabled:
        return

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(collect_registry()), media_type=CONTENT_TYPE_LATEST)


def mark_process_dead() -> None:
    """Let live-only gauges forget this worker once it stops."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(os.getpid())
