"""Builds a service's FastAPI app the same way everywhere: logging, metrics, health, headers."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence

from fastapi import APIRouter, FastAPI
from starlette.types import Lifespan

from services.common.api_docs import install_api_docs
from services.common.errors import DEFAULT_UNAVAILABLE_DETAIL, install_error_handlers
from services.common.health import ReadinessCheck, health_router
from services.common.logs import configure_logging
from services.common.metrics import install_metrics
from services.common.middleware import ConcurrencyLimit, RequestBodyGuard, SecurityHeaders
from services.common.settings import ServiceSettings

DEFAULT_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def create_service_app(
    *,
    title: str,
    version: str,
    settings: ServiceSettings,
    lifespan: Lifespan[FastAPI],
    routers: Sequence[APIRouter],
    readiness: ReadinessCheck,
    required: Collection[str] = ("database",),
    max_body_bytes: int = 1024 * 1024,
    stated_max_body_bytes: int | None = None,
    path_max_body_bytes: Mapping[str, int] | None = None,
    on_body_refused: Callable[[int], None] | None = None,
    body_idle_timeout_s: float = 15.0,
    body_total_timeout_s: float = 60.0,
    content_security_policy: str = DEFAULT_CSP,
    unavailable_detail: str = DEFAULT_UNAVAILABLE_DETAIL,
    unavailable_retry_after_s: int = 5,
) -> FastAPI:
    """Wire one service; routers and lifespan are the service's own.

    Routes raise domain errors and never translate them: `DatabaseUnavailable` answers 503
    with `unavailable_detail` and `Retry-After: unavailable_retry_after_s`, `NotFound` 404,
    `InvalidInput` 422.
    """
    configure_logging(settings.log_level, settings.log_format)
    app = FastAPI(title=title, version=version, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.settings = settings
    install_api_docs(app)
    install_error_handlers(
        app,
        unavailable_detail=unavailable_detail,
        unavailable_retry_after_s=unavailable_retry_after_s,
    )
    app.include_router(health_router(readiness, required=required))
    for router in routers:
        app.include_router(router)
    # Starlette wraps middleware in reverse order of addition. Outermost first: the HTTP
    # metrics (so that every answer is counted, refusals included), the concurrency limit,
    # the body guard, the security headers.
    app.add_middleware(SecurityHeaders, content_security_policy=content_security_policy)
    app.add_middleware(
        RequestBodyGuard,
        max_bytes=max_body_bytes,
        path_max_bytes=path_max_body_bytes,
        stated_max_bytes=stated_max_body_bytes,
        on_refused=on_body_refused,
        idle_timeout_s=body_idle_timeout_s,
        total_timeout_s=body_total_timeout_s,
    )
    app.add_middleware(ConcurrencyLimit, max_requests=settings.max_concurrency)
    install_metrics(app, enabled=settings.enable_prometheus)
    return app
