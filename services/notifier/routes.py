"""HTTP routes of the notifier: Alertmanager webhooks and direct notifications in."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Coroutine, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from services.common.auth import bearer_token_dependency
from services.common.db import Database, DatabaseDep
from services.common.errors import ErrorBody
from services.notifier import metrics
from services.notifier.consoles import ConsoleProbe
from services.notifier.delivery import Dispatcher
from services.notifier.formatting import (
    OutboundMessage,
    Presentation,
    WebhookRendering,
    alertmanager_base,
    notification_message,
    prometheus_base,
)
from services.notifier.outbox import Outbox
from services.notifier.priority import QUEUE_FULL_RETRY_AFTER_S, QueueFull, Quota
from services.notifier.schemas import AlertmanagerAlert, AlertmanagerWebhook, Notification, Queued
from services.notifier.settings import Settings

T = TypeVar("T")


def get_app_settings(request: Request) -> Settings:
    """This app's settings."""
    settings: Settings = request.app.state.settings
    return settings


def get_dispatcher(request: Request) -> Dispatcher:
    """The background sender built in the lifespan."""
    dispatcher: Dispatcher = request.app.state.dispatcher
    return dispatcher


def get_console_probe(request: Request) -> ConsoleProbe:
    """What the monitoring tools serve, asked once per address."""
    probe: ConsoleProbe = request.app.state.consoles
    return probe


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]
ConsolesDep = Annotated[ConsoleProbe, Depends(get_console_probe)]


def token_first_route(check: Callable[[Request], None]) -> type[APIRoute]:
    """A route class running `check` before FastAPI reads the body.

    FastAPI reads and parses a JSON body before it solves any dependency, so a token checked
    as a dependency comes too late: anyone could make us take in and parse 8 MiB of JSON.
    Here the refusal (401, or 429 once throttled) is answered with the body unread.
    """

    class TokenFirst(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def token_first(request: Request) -> Response:
                check(request)
                return await handler(request)

            return token_first

    return TokenFirst


def presentation_of(settings: Settings) -> Presentation:
    """Formatting choices taken from the settings."""
    return Presentation(
        grafana_url=settings.grafana_url,
        runbook_base_url=settings.runbook_base_url,
        prometheus_url=settings.prometheus_public_url,
        alertmanager_url=settings.alertmanager_public_url,
        mentions=settings.mentions_by_severity(),
        routes=tuple(settings.routes),
        description_max=settings.embed_description_max,
    )


async def alert_presentation(
    settings: Settings, webhook: AlertmanagerWebhook, probe: ConsoleProbe
) -> Presentation:
    """The settings' choices, with what the Prometheus and Alertmanager linked to serve."""
    presentation = presentation_of(settings)
    prometheus = {
        prometheus_base(alert.generator_url, settings.prometheus_public_url)
        for alert in webhook.alerts
    }
    alertmanager = alertmanager_base(presentation, webhook.external_url)
    consoles = await probe.consoles(
        [base for base in prometheus if base], [alertmanager] if alertmanager else []
    )
    return dataclasses.replace(presentation, consoles=consoles)


def alert_dedup_key(group_key: str, alert: AlertmanagerAlert) -> str:
    """Group key + fingerprint + status (+ start, so a new occurrence is a new alert)."""
    started = alert.starts_at.isoformat() if alert.starts_at else ""
    identity = "\x00".join((group_key, alert.identity(), alert.status, started))
    return "am:" + hashlib.sha256(identity.encode()).hexdigest()


def quota_of(request: Request, source: str, settings: Settings) -> Quota:
    """The caller is the route and the client's address (`FORWARDED_ALLOW_IPS` decides when a
    proxy's `X-Forwarded-For` is believed): everyone holds the same token, so a name a caller
    gave itself would let it take any other's share."""
    client = request.client.host if request.client else "unknown"
    return Quota(caller=f"{source}@{client}", max_pending=settings.max_pending_per_caller)


async def queue_full(request: Request, exc: Exception) -> JSONResponse:
    """429 with Retry-After, counted: the caller retries, nothing is dropped."""
    assert isinstance(exc, QueueFull)
    metrics.REFUSED.labels(exc.source, exc.lane).inc()
    return JSONResponse(
        {"detail": str(exc)},
        status_code=429,
        headers={"Retry-After": str(QUEUE_FULL_RETRY_AFTER_S)},
    )


async def alertmanager(
    webhook: AlertmanagerWebhook,
    request: Request,
    database: DatabaseDep,
    dispatcher: DispatcherDep,
    settings: SettingsDep,
    probe: ConsolesDep,
) -> Queued:
    """Queue an Alertmanager notification; 2xx only once it is committed to the outbox."""
    candidates = [(alert, alert_dedup_key(webhook.group_key, alert)) for alert in webhook.alerts]
    rendering = WebhookRendering(webhook, await alert_presentation(settings, webhook, probe))
    outbox = Outbox(database.pool, dedup_window_s=settings.dedup_window_s)
    quota = quota_of(request, "alertmanager", settings)
    with database.guard():
        queued, duplicates = await outbox.enqueue_alerts(
            f"am:{webhook.group_key}", "alertmanager", candidates, rendering, quota
        )
    _count("alertmanager", queued, duplicates, dispatcher)
    return Queued(messages=queued, duplicates=duplicates)


async def notify(
    notification: Notification,
    request: Request,
    database: DatabaseDep,
    dispatcher: DispatcherDep,
    settings: SettingsDep,
) -> Queued:
    """Queue a direct notification."""
    presentation = presentation_of(settings)
    key = f"notify:{notification.dedup_key}" if notification.dedup_key else ""

    def render(kept: list[tuple[Notification, str]]) -> list[OutboundMessage]:
        return [notification_message(item, presentation) for item, _ in kept]

    queued, duplicates = await _enqueue(
        database,
        dispatcher,
        settings,
        "notify",
        "notify",
        [(notification, key)],
        render,
        quota_of(request, "notify", settings),
    )
    return Queued(messages=queued, duplicates=duplicates)


def notifier_router(token: str | None) -> APIRouter:
    """`/alertmanager` and `/notify`, each refused without `token` before its body is read."""
    router = APIRouter(
        tags=["notifications"],
        route_class=token_first_route(bearer_token_dependency(token, realm="notifier")),
        responses={
            401: {"model": ErrorBody, "description": "Missing or wrong bearer token."},
            429: {
                "model": ErrorBody,
                "description": "Too many failed tokens from this client, or too many of its "
                "messages of this severity waiting for Discord: retry after Retry-After.",
            },
            503: {"model": ErrorBody, "description": "Not queued (database unreachable): retry."},
        },
    )
    router.add_api_route("/alertmanager", alertmanager, methods=["POST"], status_code=202)
    router.add_api_route("/notify", notify, methods=["POST"], status_code=202)
    return router


async def _enqueue(
    database: Database,
    dispatcher: Dispatcher,
    settings: Settings,
    group_key: str,
    source: str,
    candidates: Sequence[tuple[T, str]],
    render: Callable[[list[tuple[T, str]]], list[OutboundMessage]],
    quota: Quota,
) -> tuple[int, int]:
    """Commit to the outbox; wake the sender when something new was queued."""
    outbox = Outbox(database.pool, dedup_window_s=settings.dedup_window_s)
    with database.guard():
        queued, duplicates = await outbox.enqueue(group_key, source, candidates, render, quota)
    _count(source, queued, duplicates, dispatcher)
    return queued, duplicates


def _count(source: str, queued: int, duplicates: int, dispatcher: Dispatcher) -> None:
    """Measure what was queued; wake the sender when something new was."""
    metrics.QUEUED.labels(source).inc(queued)
    metrics.DUPLICATES.labels(source).inc(duplicates)
    if queued:
        dispatcher.wake()
