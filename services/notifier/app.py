"""Wiring of the notifier service: `create_app(settings)`."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI, Request

from services.common.db import Database
from services.common.metrics import mark_process_dead
from services.common.web import create_service_app
from services.notifier import metrics
from services.notifier.consoles import PROBE_TIMEOUT_S, ConsoleProbe
from services.notifier.delivery import Dispatcher
from services.notifier.digest import DigestScheduler
from services.notifier.discord import DiscordClient, redact
from services.notifier.priority import QueueFull
from services.notifier.routes import notifier_router, queue_full
from services.notifier.settings import Settings, get_settings

logger = logging.getLogger(__name__)

# The largest Alertmanager group we expect (thousands of alerts with long annotations).
MAX_BODY_BYTES = 8 * 1024 * 1024
# Alertmanager retries on 5xx; this tells other clients when to.
RETRY_AFTER_S = 5


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Connect to PostgreSQL and start the sender; stop it handing back its leases."""
    settings: Settings = app.state.settings
    database = Database.from_settings(settings)
    await database.start()
    app.state.database = database
    discord = DiscordClient(timeout_s=settings.discord_timeout_s)
    dispatcher = Dispatcher(database, discord, settings)
    app.state.dispatcher = dispatcher
    dispatcher.start()
    digests = DigestScheduler(database, settings, dispatcher.wake)
    digests.start()
    probe_client = httpx.AsyncClient(timeout=PROBE_TIMEOUT_S)
    app.state.consoles = ConsoleProbe(probe_client)
    metrics.WEBHOOK_MISCONFIGURED.set(0)
    if settings.enabled:
        logger.info(
            "notifier ready",
            extra={"webhook": redact(settings.webhook_for("default")), "owner": dispatcher.owner},
        )
    else:
        logger.warning("DISCORD_WEBHOOK_URL is not set: messages are logged, not sent")
    try:
        yield
    finally:
        await probe_client.aclose()
        await digests.stop()
        await dispatcher.stop()
        await discord.close()
        await database.close()
        mark_process_dead()


async def readiness(request: Request) -> dict[str, str]:
    """The database is required (nothing can be queued without it); Discord is reported."""
    database: Database = request.app.state.database
    settings: Settings = request.app.state.settings
    dispatcher: Dispatcher = request.app.state.dispatcher
    discord = (
        "disabled"
        if not settings.enabled
        else "misconfigured"
        if dispatcher.misconfigured
        else "ok"
    )
    return {"database": "ok" if database.connected else "down", "discord": discord}


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; nothing heavy happens before the lifespan starts."""
    settings = settings or get_settings()
    token = settings.notifier_token.get_secret_value() if settings.notifier_token else None
    app = create_service_app(
        title="Cat or dog — notifier",
        version="1.0.0",
        settings=settings,
        lifespan=lifespan,
        routers=[notifier_router(token)],
        readiness=readiness,
        required=("database",),
        max_body_bytes=MAX_BODY_BYTES,
        unavailable_detail="the notification could not be queued (database unavailable); "
        "retry later",
        unavailable_retry_after_s=RETRY_AFTER_S,
    )
    app.add_exception_handler(QueueFull, queue_full)
    return app
