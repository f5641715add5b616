"""Wiring of the inference service: `create_app(settings)`."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles

from services.common.db import Database
from services.common.metrics import mark_process_dead
from services.common.notify import announce_start, cancel
from services.common.web import DEFAULT_CSP, create_service_app
from services.inference import metrics
from services.inference.images import ImageLimits
from services.inference.model import Classifier
from services.inference.predictor import Predictor
from services.inference.routes import STATIC_DIR, router
from services.inference.settings import Settings, get_settings
from services.inference.store import PredictionWriter

logger = logging.getLogger(__name__)

# Multipart framing around the photo: boundaries, part headers and the consent fields.
FORM_OVERHEAD_BYTES = 64 * 1024


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load the model, connect to PostgreSQL, start the writer; undo it all on the way out."""
    settings: Settings = app.state.settings
    classifier = Classifier(
        settings.model_path,
        intra_op_threads=settings.onnx_intra_op_threads,
        providers=settings.onnx_providers,
    )
    card = classifier.card
    metrics.MODEL_INFO.labels(name=card.name, version=card.version, sha256=classifier.sha256).set(1)
    app.state.predictor = Predictor(classifier, ImageLimits(max_pixels=settings.max_image_pixels))
    app.state.executor = ThreadPoolExecutor(
        settings.inference_threads, thread_name_prefix="predict"
    )
    database = Database.from_settings(settings)
    await database.start()
    app.state.database = database
    writer = PredictionWriter(
        database,
        max_rows=settings.pending_rows_limit,
        max_photo_bytes=settings.pending_photo_bytes_limit,
    )
    writer.start()
    app.state.writer = writer
    logger.info("inference ready", extra={"model": card.name, "version": card.version})
    # In the background: start-up never waits for, or depends on, the notifier.
    app.state.announcement = announce_start("inference", card.version)
    try:
        yield
    finally:
        await cancel(app.state.announcement)
        await writer.stop()
        await database.close()
        app.state.executor.shutdown(wait=True)
        mark_process_dead()


async def readiness(request: Request) -> dict[str, str]:
    """The model is required; PostgreSQL only degrades us (rows wait in memory)."""
    database: Database = request.app.state.database
    return {
        "model": "ok" if getattr(request.app.state, "predictor", None) else "down",
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
        routers=[router],
        readiness=readiness,
        required=("model",),
        max_body_bytes=settings.max_upload_bytes + FORM_OVERHEAD_BYTES,
        body_idle_timeout_s=settings.upload_idle_timeout_s,
        body_total_timeout_s=settings.upload_total_timeout_s,
        content_security_policy=DEFAULT_CSP.replace(
            "connect-src 'self'", f"connect-src 'self' {settings.feedback_origin}"
        ),
    )
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
