"""Wiring of the feedback service: `create_app(settings)`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware

from services.common.db import Database
from services.common.metrics import mark_process_dead
from services.common.ratelimit import RateLimiter
from services.common.web import create_service_app
from services.feedback import accuracy, retention
from services.feedback.repository import FeedbackRepository
from services.feedback.routes import admin_router, router
from services.feedback.settings import Settings, get_settings

logger = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Connect to PostgreSQL and start the retention and live-accuracy schedules."""
    settings: Settings = app.state.settings
    database = Database.from_settings(settings)
    await database.start()
    app.state.database = database
    repository = FeedbackRepository(
        database,
        wait_for_prediction_s=settings.prediction_wait_s,
        acquire_timeout_s=settings.db_connect_timeout_s,
    )
    app.state.repository = repository
    app.state.limiter = RateLimiter(
        rate_per_s=settings.rgpd_rate_limit_per_minute / 60.0,
        burst=settings.rgpd_rate_limit_burst,
    )
    tasks = [
        asyncio.create_task(
            retention.run_forever(
                database,
                days=settings.retention_days,
                batch_size=settings.retention_batch_size,
                interval_s=settings.retention_interval_s,
            ),
            name="retention",
        ),
        asyncio.create_task(
            accuracy.refresh_forever(
                repository, window_s=settings.accuracy_window_s, every_s=settings.accuracy_refresh_s
            ),
            name="live-accuracy",
        ),
    ]
    logger.info("feedback ready", extra={"retention_days": settings.retention_days})
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await database.close()
        mark_process_dead()


async def readiness(request: Request) -> dict[str, str]:
    """Without PostgreSQL the service cannot do its job: it is unready."""
    database: Database = request.app.state.database
    return {"database": "ok" if database.connected else "down"}


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; nothing heavy happens before the lifespan starts."""
    settings = settings or get_settings()
    app = create_service_app(
        title="Cat or dog — feedback",
        version="1.0.0",
        settings=settings,
        lifespan=lifespan,
        routers=[router, admin_router(settings.feedback_admin_token)],
        readiness=readiness,
        required=("database",),
        max_body_bytes=16 * 1024,
        unavailable_retry_after_s=settings.retry_after_s,
    )
    # Added last, so outermost: preflights are answered and 4xx/5xx carry the CORS headers
    # the page needs to read them.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.allowed_origins,
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=["Content-Type"],
        expose_headers=["Retry-After"],
        allow_credentials=False,
        max_age=600,
    )
    return app
