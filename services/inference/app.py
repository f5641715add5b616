"""Wiring of the inference service: `create_app(settings)`."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import socket
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles

from catdog.images import ImageLimits
from catdog.model import Classifier
from services.common.db import Database
from services.common.metrics import mark_process_dead
from services.common.notify import announce_start, cancel
from services.common.ratelimit import RateLimiter
from services.common.web import DEFAULT_CSP, create_service_app
from services.inference import metrics, open_inference
from services.inference.canary import CallCounts, CanaryAnalysis, RollbackPolicy
from services.inference.lineup import LineupManager
from services.inference.model_watch import ModelWatch, WatchPolicy
from services.inference.open_inference import ProtocolError, protocol_error
from services.inference.registry import Registry
from services.inference.registry_routes import registry_router
from services.inference.routes import STATIC_DIR, router
from services.inference.settings import Settings, get_settings
from services.inference.shadow import ShadowScorer
from services.inference.writer import PredictionWriter

logger = logging.getLogger(__name__)

# Multipart framing around the photo: boundaries, part headers and the consent fields.
FORM_OVERHEAD_BYTES = 64 * 1024


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Connect to PostgreSQL, load the registry's models, start the background work; undo it
    all on the way out."""
    settings: Settings = app.state.settings
    app.state.executor = ThreadPoolExecutor(
        settings.inference_threads, thread_name_prefix="predict"
    )
    # Loading models and registry calls get their own thread: never a request's.
    control = ThreadPoolExecutor(1, thread_name_prefix="models")
    database = Database.from_settings(settings)
    await database.start()
    app.state.database = database
    registry = Registry(settings.database_url, settings.model_store_dir)
    manager = LineupManager(
        registry=registry,
        load_model=functools.partial(
            Classifier,
            intra_op_threads=settings.onnx_intra_op_threads,
            providers=settings.onnx_providers,
        ),
        limits=ImageLimits(max_pixels=settings.max_image_pixels),
        executor=control,
    )
    await manager.start(settings.model_path, actor=f"inference@{socket.gethostname()}")
    app.state.lineup = manager
    writer = PredictionWriter(
        database,
        max_rows=settings.pending_rows_limit,
        max_photo_bytes=settings.pending_photo_bytes_limit,
        max_age_s=settings.pending_max_age_s,
    )
    writer.start()
    app.state.writer = writer
    shadow = ShadowScorer(writer, queue_limit=settings.shadow_queue_limit)
    shadow.start()
    app.state.shadow = shadow
    app.state.calls = CallCounts()
    per_minute = settings.decode_megapixels_per_client_per_minute
    # The burst admits the largest photo allowed at all, or it could never be sent.
    app.state.decode_budget = RateLimiter(
        rate_per_s=per_minute / 60,
        burst=max(math.ceil(per_minute), math.ceil(settings.max_image_pixels / 1e6)),
    )
    per_hour = settings.kept_photos_per_client_per_hour
    app.state.photo_quota = RateLimiter(rate_per_s=per_hour / 3600, burst=per_hour)
    analysis = CanaryAnalysis(
        database, registry, manager, rollback_policy(settings), app.state.calls
    )
    app.state.watch = ModelWatch(database, manager, watch_policy(settings))
    background = [
        asyncio.create_task(
            manager.sync_forever(settings.model_registry_poll_s, database), name="registry"
        ),
        asyncio.create_task(
            analysis.check_forever(settings.canary_check_interval_s), name="canary-analysis"
        ),
        asyncio.create_task(
            app.state.watch.check_forever(),
            name="model-watch",
        ),
    ]
    active = manager.lineup.active
    logger.info("inference ready", extra={"model": active.version})
    # In the background: start-up never waits for, or depends on, the notifier.
    app.state.announcement = announce_start("inference", active.version)
    try:
        yield
    finally:
        await cancel(app.state.announcement)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await shadow.stop()
        await writer.stop()
        await database.close()
        app.state.executor.shutdown(wait=True)
        control.shutdown(wait=True)
        mark_process_dead()


def rollback_policy(settings: Settings) -> RollbackPolicy:
    """The canary rollback policy the settings describe."""
    return RollbackPolicy(
        alpha=settings.rollback_alpha,
        min_labelled=settings.rollback_min_labelled,
        latency_ratio=settings.rollback_latency_ratio,
        min_requests=settings.rollback_min_requests,
        max_error_rate=settings.rollback_max_error_rate,
    )


def watch_policy(settings: Settings) -> WatchPolicy:
    """What each model-watch check looks at, from the settings."""
    return WatchPolicy(
        window=settings.drift_window,
        interval_s=settings.drift_interval_s,
        alpha=settings.drift_alpha,
        permutations=settings.drift_permutations,
        keep_windows=settings.drift_keep_windows,
        labelled_window=settings.labelled_window,
    )


async def readiness(request: Request) -> dict[str, str]:
    """The model is required; PostgreSQL only degrades us (rows wait in memory)."""
    database: Database = request.app.state.database
    return {
        "model": "ok" if getattr(request.app.state, "lineup", None) else "down",
        "database": "ok" if database.connected else "down",
    }


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; nothing heavy happens before the lifespan starts."""
    settings = settings or get_settings()
    app = create_service_app(
        title="Cat or dog — inference",
        version="1.0.0",
        settings=settings,
        lifespan=lifespan,
        routers=[router, open_inference.router, registry_router(settings.inference_admin_token)],
        readiness=readiness,
        required=("model",),
        max_body_bytes=settings.max_upload_bytes + FORM_OVERHEAD_BYTES,
        stated_max_body_bytes=settings.max_upload_bytes,
        path_max_body_bytes={"/admin/models": settings.model_upload_max_bytes},
        on_body_refused=metrics.count_body_refusal,
        body_idle_timeout_s=settings.upload_idle_timeout_s,
        body_total_timeout_s=settings.upload_total_timeout_s,
        content_security_policy=DEFAULT_CSP.replace(
            "connect-src 'self'", f"connect-src 'self' {settings.feedback_origin}"
        ),
    )
    app.add_exception_handler(ProtocolError, protocol_error)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
