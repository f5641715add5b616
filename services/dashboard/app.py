"""Wiring of the dashboard service: `create_app(settings)`.

Dash runs on its FastAPI backend inside the service's own FastAPI app, so pages, callbacks,
health, readiness and metrics share one process, one event loop and one asyncpg pool.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

from dash.backends._fastapi import DashMiddleware
from fastapi import FastAPI, Request
from starlette.middleware import Middleware

from services.common.db import Database
from services.common.metrics import mark_process_dead
from services.common.web import create_service_app
from services.dashboard import rollups
from services.dashboard.auth import BasicAuth
from services.dashboard.callbacks import register_callbacks
from services.dashboard.dash_requests import DashRequests
from services.dashboard.language import LanguageFromPath, LocalisedDash
from services.dashboard.layout import build_layout
from services.dashboard.queries import Queries
from services.dashboard.routes import router
from services.dashboard.settings import Settings, get_settings

logger = logging.getLogger(__name__)

PREFIX = "/monitoring/"
ASSETS_DIR = Path(__file__).with_name("assets")
# The one inline script of Dash's page; allowed by its hash rather than by 'unsafe-inline'.
RENDERER_SCRIPT = "var renderer = new DashRenderer();"


def content_security_policy(inline_script: str) -> str:
    """The service CSP, relaxed only where Dash and Plotly need it.

    Scripts: our origin plus the renderer bootstrap, allowed by its hash. Styles: Plotly
    writes <style> elements and style attributes at run time, so 'unsafe-inline' is needed
    for styles (styles cannot run code). Images: Plotly's "download as PNG" uses data: URLs.
    """
    digest = base64.b64encode(hashlib.sha256(inline_script.encode()).digest()).decode()
    return (
        f"default-src 'self'; script-src 'self' 'sha256-{digest}'; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; "
        "font-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Connect to PostgreSQL (lazily: the page explains when it is down), keep the roll-ups
    rolling; stop both on the way out."""
    settings: Settings = app.state.settings
    database = Database.from_settings(settings)
    await database.start()
    app.state.database = database
    app.state.queries = Queries(
        database,
        timeout_s=settings.dashboard_query_timeout_s,
        acquire_timeout_s=settings.db_connect_timeout_s,
    )
    if not settings.login_required:
        logger.warning("dashboard login disabled: DEV_MODE without DASHBOARD_PASSWORD")
    rolling = asyncio.create_task(
        rollups.run_forever(
            database,
            interval_s=settings.rollup_interval_s,
            grace=timedelta(seconds=settings.rollup_grace_s),
        ),
        name="roll-ups",
    )
    try:
        yield
    finally:
        rolling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await rolling
        await database.close()
        mark_process_dead()


async def readiness(request: Request) -> dict[str, str]:
    """PostgreSQL down only degrades us: the page stays up and says so."""
    database: Database = request.app.state.database
    return {"database": "ok" if database.connected else "down"}


def _arrange_middleware(app: FastAPI, settings: Settings) -> None:
    """Put Dash's middleware innermost, behind the login, instead of outermost where Dash adds it.

    Outermost, Dash would read callback bodies before the body-size guard and answer before
    the security headers, metrics and login had seen the request.
    """
    dash_entries = [entry for entry in app.user_middleware if entry.cls is DashMiddleware]
    if len(dash_entries) != 1:
        raise RuntimeError("expected Dash to add exactly one middleware")
    app.user_middleware.remove(dash_entries[0])
    if settings.login_required:
        assert settings.dashboard_password is not None
        app.user_middleware.append(
            Middleware(
                BasicAuth,
                user=settings.dashboard_user,
                password=settings.dashboard_password,
                prefix=PREFIX,
            )
        )
    app.user_middleware.append(Middleware(LanguageFromPath, prefix=PREFIX))
    # Starlette's factory typing cannot follow the forwarded keyword arguments.
    app.user_middleware.append(Middleware(DashRequests, **dash_entries[0].kwargs))  # type: ignore[arg-type]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; nothing connects before the lifespan starts."""
    settings = settings or get_settings()
    app = create_service_app(
        title="Cat or dog — monitoring dashboard",
        version="1.0.0",
        settings=settings,
        lifespan=lifespan,
        routers=[router],
        readiness=readiness,
        required=(),
        content_security_policy=content_security_policy(RENDERER_SCRIPT),
    )
    dash_app = LocalisedDash(
        "services.dashboard",
        server=app,  # type: ignore[arg-type]  # Dash's hints predate its FastAPI backend
        url_base_pathname=PREFIX,
        assets_folder=str(ASSETS_DIR),
        title="Cat or dog — monitoring",
        update_title="",
        serve_locally=True,
        compress=False,
    )
    if dash_app.renderer != RENDERER_SCRIPT:
        raise RuntimeError("Dash's inline renderer script changed: update RENDERER_SCRIPT")
    # A function, so that each page load gets the layout in its own language.
    dash_app.layout = functools.partial(
        build_layout,
        default_range=settings.dashboard_default_range,
        refresh_s=settings.dashboard_refresh_s,
    )
    register_callbacks(dash_app, app, settings)
    _arrange_middleware(app, settings)
    app.state.dash = dash_app
    return app
